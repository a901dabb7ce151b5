import json
from pathlib import Path

import pytest

from algora.errors import InvalidManifest
from algora.modelfolder.layouts import find_manifest, has_manifest
from algora.modelfolder.manifest import load_manifest, parse_manifest


def test_minimal_manifest_has_defaults() -> None:
    manifest = parse_manifest('[model]\nname = "hello"\n')
    assert manifest.model.entrypoint == "model:apply"
    assert manifest.environment.requirements == "requirements.txt"
    assert manifest.serving.replicas == 1
    assert manifest.example.as_call() is None


def test_examples_become_calls() -> None:
    text = parse_manifest('[model]\nname = "a"\n[example]\ntext = "world"\n')
    assert text.example.as_call() == ("text", b"world")
    data = parse_manifest('[model]\nname = "a"\n[example]\ninput = { x = [1, 2] }\n')
    content_type, payload = data.example.as_call()
    assert content_type == "json" and json.loads(payload) == {"x": [1, 2]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml [", "not valid TOML"),
        ('[model]\nname = "Bad Name"\n', "model.name"),
        ('[model]\nname = "a"\nentrypoint = "model"\n', "model.entrypoint"),
        ('[model]\nname = "a"\nsurprise = 1\n', "model.surprise"),
        ('[model]\nname = "a"\n[serving]\nreplicas = 0\n', "serving.replicas"),
        ("[environment]\n", "model"),
    ],
)
def test_invalid_manifests_say_what_is_wrong(text, fragment) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(text)
    assert fragment in caught.value.message


def test_missing_manifest_tells_how_to_create_one(tmp_path) -> None:
    with pytest.raises(InvalidManifest, match="algora init"):
        load_manifest(tmp_path)


def test_a_folder_name_the_file_system_refuses_is_an_invalid_manifest(tmp_path: Path) -> None:
    """Not an OSError traceback: ``algora publish`` with a name too long for the disk."""
    too_long = tmp_path / ("%e0%80%ae" * 40)
    assert has_manifest(too_long) is False
    with pytest.raises(InvalidManifest, match="cannot read the model folder"):
        find_manifest(too_long)
