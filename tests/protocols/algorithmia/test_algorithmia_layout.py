"""Algorithmia's repository layout needs no algora.toml (algora/modelfolder/algorithmia.py).

Unit tests of the derivation (conf variants, languages, entry files, names, path tricks), then
the real interfaces: ``algora publish`` as a subprocess on an Algorithmia-layout folder, and
git itself pushing an unmodified Algorithmia ADK algorithm into a model's repository, built,
published and called through the real ``algorithmia`` client under its CamelCase name.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest

from algora.errors import InvalidManifest
from algora.modelfolder.algorithmia import (
    CONF_NAME,
    derive_manifest,
    python_version,
)
from algora.modelfolder.layouts import find_manifest, has_manifest
from algora.modelfolder.packing import pack_directory
from algora.protocols.algorithmia.names import fold_path
from algora.registry.sources import runtime_of
from algora.testing import RunningServer, write_model

from ...helpers import ADK_REQUIREMENTS, algora, finished_build, git

PLAIN = 'def apply(input):\n    return "hello {}".format(input)\n'
# Algorithmia's ADK template (langpacks, python3-adk), with a load() as its docs show it.
ADK_ALGORITHM = """\
from Algorithmia import ADK


# API calls will begin at the apply() method, with the request body passed as 'input'
# For more details, see algorithmia.com/developers/algorithm-development/languages
def load():
    return {"greeting": "howdy"}


def apply(input, globals):
    return "{} {}".format(globals["greeting"], input)


algorithm = ADK(apply, load)
algorithm.init("world")
"""


def algorithmia_repo(
    folder: Path,
    conf: dict[str, Any] | str,
    files: dict[str, str] | None = None,
) -> Path:
    """An algorithm's repository as Algorithmia had it: algorithmia.conf, src/, requirements."""
    folder.mkdir(parents=True, exist_ok=True)
    text = conf if isinstance(conf, str) else json.dumps(conf, indent=4)
    (folder / CONF_NAME).write_text(text, encoding="utf-8")
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "requirements.txt").write_text("", encoding="utf-8")
    for relative, content in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content, encoding="utf-8")
    return folder


def hello_conf(**extra: Any) -> dict[str, Any]:
    return {"username": "demo", "algoname": "Hello", "language": "python3", **extra}


# -- the derivation -------------------------------------------------------------------------
def test_algorithmias_hello_is_a_manifest(tmp_path: Path) -> None:
    repo = algorithmia_repo(
        tmp_path / "Hello",
        {**hello_conf(environment="cpu"), "submitted_at": 1551982760095},
        {"src/Hello.py": PLAIN, "src/Hello_test.py": "", "requirements.txt": "six==1.16.0\n"},
    )
    found = find_manifest(repo)
    assert found.origin == CONF_NAME
    manifest = found.manifest
    assert manifest.model.name == "hello"  # Algora's names are lowercase
    assert manifest.model.entrypoint == "src.Hello:apply"
    assert manifest.environment.requirements == "requirements.txt"
    assert manifest.serving.network is False
    assert manifest.serving.timeout == 300  # Algorithmia's default
    assert manifest.example.as_call() is None
    assert found.notes == (
        "no algora.toml: derived from algorithmia.conf: entrypoint src.Hello:apply",
    )


def test_the_name_it_is_published_under_wins_over_algoname(tmp_path: Path) -> None:
    # A repository's model (OpenForecast's conf says GenerativeForecast) keeps its own name.
    repo = algorithmia_repo(tmp_path / "r", hello_conf(), {"src/Hello.py": PLAIN})
    assert find_manifest(repo, name="greeter").manifest.model.name == "greeter"
    with pytest.raises(InvalidManifest, match=r"model\.name"):
        find_manifest(repo, name="Not A Name")


def test_adk_algorithms_live_in_src_algorithm(tmp_path: Path) -> None:
    repo = algorithmia_repo(
        tmp_path / "r", hello_conf(language="python3.x-adk"), {"src/Algorithm.py": PLAIN}
    )
    assert find_manifest(repo).manifest.model.entrypoint == "src.Algorithm:apply"
    # src/<algoname>.py comes first, as Algorithmia's Python runtimes loaded it.
    (repo / "src" / "Hello.py").write_text(PLAIN, encoding="utf-8")
    assert find_manifest(repo).manifest.model.entrypoint == "src.Hello:apply"


@pytest.mark.parametrize(
    ("algoname", "module"),
    [("my-model", "my_model"), ("3d", "algorithm_3d"), ("class", "algorithm_class")],
)
def test_names_that_are_no_module_use_the_templates_file(
    tmp_path: Path, algoname: str, module: str
) -> None:
    repo = algorithmia_repo(
        tmp_path / "r", hello_conf(algoname=algoname), {f"src/{module}.py": PLAIN}
    )
    manifest = find_manifest(repo).manifest
    assert manifest.model.entrypoint == f"src.{module}:apply"
    assert manifest.model.name == algoname


def test_a_missing_algorithm_file_says_where_it_looked(tmp_path: Path) -> None:
    repo = algorithmia_repo(tmp_path / "r", hello_conf(), {"src/Other.py": PLAIN})
    with pytest.raises(InvalidManifest) as raised:
        find_manifest(repo)
    assert raised.value.status == 400
    assert "src/Hello.py" in raised.value.message
    assert "src/Algorithm.py" in raised.value.message


def test_an_algorithm_file_linked_out_of_the_folder_is_not_used(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text(PLAIN, encoding="utf-8")
    repo = algorithmia_repo(tmp_path / "r", hello_conf())
    (repo / "src" / "Hello.py").symlink_to(outside)
    with pytest.raises(InvalidManifest, match=r"src/Hello\.py"):
        find_manifest(repo)


@pytest.mark.parametrize(
    "algoname",
    ["../x", "..", ".", "a/b", "/etc/passwd", "src/../../x", "Hello.py", "x y", "", " x", "-x",
     "x" * 65, "hé", None, 42, ["Hello"]],
)  # fmt: skip
def test_algonames_that_could_escape_or_are_no_name_are_refused(
    tmp_path: Path, algoname: object
) -> None:
    repo = algorithmia_repo(tmp_path / "r", hello_conf(algoname=algoname), {"src/Hello.py": PLAIN})
    with pytest.raises(InvalidManifest, match='"algoname" must be') as raised:
        find_manifest(repo)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("language", "version"),
    [
        (None, None),
        ("", None),
        ("python3", None),
        ("Python3", None),
        ("python3-1", None),
        ("python3.x", None),
        ("python-3.x-1", None),
        ("python3.x-adk", None),
        ("python37", "3.7"),
        ("python3.7", "3.7"),
        ("python38", "3.8"),
        ("python-3.9", "3.9"),
        ("python3.9", "3.9"),
        ("python310", "3.10"),
        ("python-3.11", "3.11"),
    ],
)
def test_python_3_in_any_of_algorithmias_spellings(language: object, version: str | None) -> None:
    assert python_version(language) == version


@pytest.mark.parametrize(
    ("language", "says"),
    [
        ("python2", "Python 2"),
        ("python2-langpack", "Python 2"),
        ("python27", "Python 2"),
        ("python-2.7", "Python 2"),
        ("anaconda3x", "conda"),
        ("miniforge3", "conda"),
        ("java", "not supported"),
        ("java11", "not supported"),
        ("scala", "not supported"),
        ("r", "not supported"),
        ("rust", "not supported"),
        ("javascript", "not supported"),
        ("ruby", "not supported"),
        ("csharp-dotnet-core2", "not supported"),
        ("python4", "not supported"),
        (3, "not supported"),
    ],
)
def test_other_languages_are_refused_saying_what_runs(
    tmp_path: Path, language: object, says: str
) -> None:
    repo = algorithmia_repo(tmp_path / "r", hello_conf(language=language), {"src/Hello.py": PLAIN})
    with pytest.raises(InvalidManifest) as raised:
        find_manifest(repo)
    assert raised.value.status == 400
    assert says in raised.value.message
    assert "Python 3" in raised.value.message and '"python3"' in raised.value.message


def test_the_misspelt_key_of_algorithmias_template_is_read(tmp_path: Path) -> None:
    # languages/python3/template/algorithmia.conf says "langauge"; real repositories kept it.
    conf = {"username": "demo", "algoname": "Hello", "langauge": "python3.7"}
    repo = algorithmia_repo(tmp_path / "r", conf, {"src/Hello.py": PLAIN})
    found = find_manifest(repo)
    assert any("Python 3.7" in note and "ALGORA_PYTHON" in note for note in found.notes)
    java = algorithmia_repo(
        tmp_path / "j", {"algoname": "Hello", "langauge": "java"}, {"src/Hello.py": PLAIN}
    )
    with pytest.raises(InvalidManifest, match='"java"'):
        find_manifest(java)


def test_runtime_of_create_settings_accepts_the_same_spellings() -> None:
    for language in ("python38", "python-3.9", "python3.x-adk", "python3.7"):
        assert runtime_of({"language": language}) == "python3"


def test_settings_in_the_conf_are_honoured(tmp_path: Path) -> None:
    conf = hello_conf(network_access="full", environment="gpu", sample_input="world")
    repo = algorithmia_repo(tmp_path / "r", conf, {"src/Hello.py": PLAIN})
    found = find_manifest(repo)
    assert found.manifest.serving.network is True
    assert found.manifest.example.as_call() == ("text", b"world")
    assert any("no GPU" in note for note in found.notes)
    json_input = algorithmia_repo(
        tmp_path / "j", hello_conf(sample_input={"a": [1, 2]}), {"src/Hello.py": PLAIN}
    )
    assert find_manifest(json_input).manifest.example.as_call() == ("json", b'{"a": [1, 2]}')
    isolated = algorithmia_repo(
        tmp_path / "i", hello_conf(network_access="isolated"), {"src/Hello.py": PLAIN}
    )
    assert find_manifest(isolated).manifest.serving.network is False
    wrong = algorithmia_repo(
        tmp_path / "w", hello_conf(network_access="sometimes"), {"src/Hello.py": PLAIN}
    )
    with pytest.raises(InvalidManifest, match="network_access"):
        find_manifest(wrong)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ('["Hello"]', "JSON object"),
        ('"Hello"', "JSON object"),
        ("", "not valid JSON"),
    ],
)
def test_a_broken_conf_says_what_it_should_hold(tmp_path: Path, text: str, says: str) -> None:
    repo = algorithmia_repo(tmp_path / "r", text, {"src/Hello.py": PLAIN})
    with pytest.raises(InvalidManifest, match=says):
        find_manifest(repo)


def test_a_conf_with_a_byte_order_mark_or_not_utf8(tmp_path: Path) -> None:
    repo = algorithmia_repo(tmp_path / "r", hello_conf(), {"src/Hello.py": PLAIN})
    (repo / CONF_NAME).write_bytes(b"\xef\xbb\xbf" + (repo / CONF_NAME).read_bytes())
    assert find_manifest(repo).manifest.model.name == "hello"
    (repo / CONF_NAME).write_bytes(b'{"algoname": "H\xe9llo"}')
    with pytest.raises(InvalidManifest, match="UTF-8"):
        find_manifest(repo)


def test_algora_toml_always_wins(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", "mine", PLAIN)
    algorithmia_repo(folder, "{this conf is broken and never read")
    found = find_manifest(folder)
    assert found.origin == "algora.toml"
    assert found.manifest.model.name == "mine"
    assert found.manifest.model.entrypoint == "model:apply"
    assert found.notes == ()


def test_a_folder_with_neither_names_both(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Hello.py").write_text(PLAIN, encoding="utf-8")
    assert not has_manifest(tmp_path)
    with pytest.raises(InvalidManifest) as raised:
        find_manifest(tmp_path)
    assert raised.value.status == 400
    assert "algora.toml" in raised.value.message and CONF_NAME in raised.value.message
    with pytest.raises(InvalidManifest):
        derive_manifest(tmp_path)


def test_algorithmia_paths_fold_the_owner_and_name_only() -> None:
    assert fold_path("/v1/algo/Demo/Hello") == "/v1/algo/demo/hello"
    assert fold_path("/v1/algo/demo/Hello/latestPrivate") == "/v1/algo/demo/hello/latestPrivate"
    assert fold_path("/v1/algorithms/demo/WordFreq/builds/AB-c") == (
        "/v1/algorithms/demo/wordfreq/builds/AB-c"
    )
    assert fold_path("/v1/algorithms/Demo") == "/v1/algorithms/demo"
    assert fold_path("/git/demo/WordFreq.git/info/refs") == "/git/demo/wordfreq.git/info/refs"
    for other in ("/api/v1/models/Demo/Hello", "/v1/data/Demo/Hello", "/v1/algo", "/"):
        assert fold_path(other) == other


# -- the real interfaces --------------------------------------------------------------------
@pytest.mark.slow
def test_algora_publish_of_an_algorithmia_folder_then_call(
    server: RunningServer, tmp_path: Path
) -> None:
    conf = {"username": "demo", "algoname": "HelloWorld", "langauge": "python3.7"}
    repo = algorithmia_repo(
        tmp_path / "HelloWorld",
        conf,
        {"src/HelloWorld.py": PLAIN, "src/HelloWorld_test.py": "", "README.md": "# HelloWorld\n"},
    )
    published = algora("publish", str(repo), server=server)
    out = published.stdout + published.stderr
    assert published.returncode == 0, out
    assert "published admin/helloworld/1.0.0" in out
    assert "archive and algorithmia.conf are valid" in out
    assert "entrypoint src.HelloWorld:apply" in out
    assert not (repo / "algora.toml").exists()  # nothing was added to the folder

    called = algora("call", "admin/helloworld/1.x", "--text", "cli", server=server)
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "hello cli"
    # Applications call it by its Algorithmia name, in any case.
    client = Algorithmia.client(server.key, server.url)
    assert client.algo("admin/HelloWorld").pipe("app").result == "hello app"
    assert client.algo("Admin/HELLOWORLD/1.0.0").pipe("caps").result == "hello caps"

    # Neither manifest: the CLI says what a folder needs, nothing is uploaded.
    empty = tmp_path / "empty"
    (empty / "src").mkdir(parents=True)
    refused = algora("publish", str(empty), server=server)
    assert refused.returncode != 0
    assert "algora.toml" in refused.stdout + refused.stderr
    assert "algorithmia.conf" in refused.stdout + refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("conf", "says"),
    [
        ({"algoname": "../x", "language": "python3"}, '"algoname" must be'),
        ({"algoname": "x", "language": "java"}, "not supported"),
        ({"algoname": "x", "language": "python3"}, "src/x.py"),
        (None, "neither"),
    ],
)
def test_an_upload_without_a_layout_is_a_400(
    server: RunningServer, tmp_path: Path, conf: dict[str, str] | None, says: str
) -> None:
    folder = tmp_path / "upload"
    if conf is None:
        folder.mkdir()
        (folder / "README.md").write_text("nothing to serve\n", encoding="utf-8")
    else:
        algorithmia_repo(folder, conf, {"src/Algorithmia_is_not_here.txt": ""})
    buffer = io.BytesIO()
    pack_directory(folder, buffer)
    response = httpx.post(
        f"{server.url}/api/v1/models/admin/x/versions",
        content=buffer.getvalue(),
        headers={"Authorization": f"Simple {server.key}", "Content-Type": "application/gzip"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # No layout at all, and no saved model either: the formats a model may also have are listed.
    assert error["code"] == ("unsupported_model_format" if conf is None else "invalid_manifest")
    assert says in error["message"]


@pytest.mark.slow
def test_git_push_of_an_unmodified_adk_algorithm_builds_and_serves(
    server: RunningServer, tmp_path: Path
) -> None:
    client = Algorithmia.client(server.key, server.url)
    algo = client.algo("admin/HelloAdk")  # Algorithmia's CamelCase name: Algora's helloadk
    created = algo.create(
        {"label": "HelloAdk", "summary": "an ADK algorithm"},
        {"language": "python3", "source_visibility": "closed", "network_access": "isolated"},
    )
    assert created["name"] == "helloadk"
    remote = f"http://me:{server.key}@{server.url.removeprefix('http://')}/git/admin/HelloAdk.git"
    work = tmp_path / "HelloAdk"
    git("clone", "-q", remote, str(work), cwd=tmp_path)
    seeded = json.loads((work / CONF_NAME).read_text(encoding="utf-8"))
    assert seeded["algoname"] == "helloadk" and seeded["language"] == "python3"
    assert not (work / "algora.toml").exists()

    # Replace the template with the algorithm as Algorithmia had it: its files only.
    for path in work.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    algorithmia_repo(
        work,
        {"username": "demo", "algoname": "HelloAdk", "language": "python3.x-adk"},
        {"src/Algorithm.py": ADK_ALGORITHM, "requirements.txt": ADK_REQUIREMENTS},
    )
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "HelloAdk as it was on Algorithmia", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    build = finished_build(algo, commit)
    logs = algo.get_build_logs(build["build_id"])["logs"]
    assert build["status"] == "succeeded", logs
    assert "archive and algorithmia.conf are valid" in logs
    assert "entrypoint src.Algorithm:apply" in logs

    published = algo.publish(version_info={"version_type": "minor"})
    assert published["build"]["commit_sha"] == commit
    version = published["version_info"]["semantic_version"]
    assert client.algo(f"admin/HelloAdk/{version}").pipe("world").result == "howdy world"
    assert client.algo("admin/helloadk").pipe("you").result == "howdy you"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        headers = {"Authorization": f"Simple {server.key}"}
        lineage = http.get(
            f"/api/v1/models/admin/helloadk/versions/{version}/lineage", headers=headers
        ).json()
    assert lineage["git"]["commit"] == commit
