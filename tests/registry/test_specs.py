import pytest

from algora.errors import InvalidVersionSpec
from algora.registry.specs import (
    SemVer,
    VersionSpec,
    is_alias_name,
    next_version,
    parse_semver,
    parse_spec,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latest", VersionSpec("latest")),
        (None, VersionSpec("latest")),
        ("1.2.3", VersionSpec("exact", 1, 2, 3)),
        ("1.2", VersionSpec("range", 1, 2)),
        ("1.2.x", VersionSpec("range", 1, 2)),
        ("1", VersionSpec("range", 1)),
        ("1.x", VersionSpec("range", 1)),
        ("0.0.1", VersionSpec("exact", 0, 0, 1)),
        ("a3f9c2d4e5f60718", VersionSpec("hash", hash_prefix="a3f9c2d4e5f60718")),
        ("latestPrivate", VersionSpec("latest_private")),
        ("production", VersionSpec("alias", alias="production")),
        ("x", VersionSpec("alias", alias="x")),
        ("deadbeefcafe", VersionSpec("hash", hash_prefix="deadbeefcafe")),  # never an alias
    ],
)
def test_parse_spec(text, expected) -> None:
    assert parse_spec(text) == expected


def test_latest_private_needs_the_manage_right_and_matches_every_version() -> None:
    spec = parse_spec("latestPrivate")
    assert spec.right == "manage" and parse_spec("1.x").right == "call"
    assert spec.matches(SemVer(3, 1, 4)) and str(spec) == "latestPrivate"


@pytest.mark.parametrize(
    "text", ["1.2.3.4", "v1", "01.2.3", "1..2", "X", "1.2.y", "../1", "1.2.3-rc", "p" * 33]
)
def test_bad_specs_are_refused(text) -> None:
    with pytest.raises(InvalidVersionSpec):
        parse_spec(text)


def test_range_matching() -> None:
    versions = [SemVer(1, 0, 0), SemVer(1, 2, 0), SemVer(1, 2, 5), SemVer(2, 0, 0)]
    assert max(v for v in versions if parse_spec("1.2.x").matches(v)) == SemVer(1, 2, 5)
    assert max(v for v in versions if parse_spec("1").matches(v)) == SemVer(1, 2, 5)
    assert max(v for v in versions if parse_spec("latest").matches(v)) == SemVer(2, 0, 0)
    assert not [v for v in versions if parse_spec("3.x").matches(v)]


def test_next_version() -> None:
    assert next_version([], "minor") == SemVer(1, 0, 0)
    assert next_version([], "patch") == SemVer(0, 0, 1)
    existing = [SemVer(1, 0, 0), SemVer(1, 3, 2)]
    assert next_version(existing, "patch") == SemVer(1, 3, 3)
    assert next_version(existing, "minor") == SemVer(1, 4, 0)
    assert next_version(existing, "major") == SemVer(2, 0, 0)


def test_semver_text() -> None:
    assert str(parse_semver("10.20.30")) == "10.20.30"
    with pytest.raises(InvalidVersionSpec):
        parse_semver("1.2")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("production", True),
        ("staging-2", True),
        ("canary_eu", True),
        ("p" * 32, True),
        ("a" * 32, False),  # all hex: a content hash
        ("p" * 33, False),
        ("latest", False),
        ("latestprivate", False),
        ("1.x", False),
        ("1", False),
        ("1.2.3", False),
        ("v1", False),
        ("v2-beta", False),
        ("deadbeefcafe", False),  # a content-hash prefix
        ("Production", False),
        ("-prod", False),
        ("prod/../x", False),
        (" prod", False),
        ("", False),
    ],
)
def test_alias_names_never_read_as_version_specs(name, ok) -> None:
    assert is_alias_name(name) is ok
    if ok:
        assert parse_spec(name) == VersionSpec("alias", alias=name)
        assert str(parse_spec(name)) == name and parse_spec(name).right == "call"
