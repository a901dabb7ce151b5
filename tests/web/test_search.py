"""The catalog's search service on each database: SQLite's FTS5 and PostgreSQL's full text."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from algora.auth.principals import Caller
from algora.platform import Platform
from algora.registry.search import ModelSearch, SearchQuery, readme_in, words_of
from algora.sdk.client import Client
from algora.testing import write_model

from ..conftest import DATABASES, gateway_on
from ..helpers import new_users

PRICES = textwrap.dedent(
    """
    from typing import TypedDict


    class House(TypedDict):
        bedrooms: int
        floor_area: float


    def apply(input: House) -> float:
        return 1000.0 * input["bedrooms"] + 10.0 * input["floor_area"]
    """
)
HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'


@dataclass
class Searching:
    platform: Platform
    search: ModelSearch
    carol: Caller
    dave: Caller

    def names(self, who: Caller, text: str = "", **filters: str) -> list[str]:
        found = self.search.search(who, SearchQuery(text=text, **filters))  # type: ignore[arg-type]
        return [hit.model.full_name for hit in found.hits]


@pytest.fixture(scope="module", params=DATABASES)
def searching(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Searching]:
    with gateway_on(request, tmp_path_factory, "search") as gateway:
        keys = new_users(gateway.client, "carol", "dave")
        carol = Client("http://testserver", keys["carol"], http=gateway.http)
        root = tmp_path_factory.mktemp("search-models")
        carol.publish(
            write_model(root / "prices", "house-prices", PRICES,
                        extra_manifest='description = "Estimates what a home sells for"\n'),
        )  # fmt: skip
        carol.publish(
            write_model(root / "greeter", "greeter", HELLO,
                        files={"README.md": "# Greeter\nSays hello to houses and their owners."},
                        extra_manifest='tags = ["greeting", "demo"]\n'),
        )  # fmt: skip
        platform: Platform = gateway.http.app.state.platform  # type: ignore[attr-defined]
        authenticate = platform.authenticator.authenticate
        yield Searching(
            platform,
            ModelSearch(platform.sessions, platform.registry, platform.store),
            authenticate(f"Simple {keys['carol']}"),
            authenticate(f"Simple {keys['dave']}"),
        )


def test_names_descriptions_readmes_tags_and_field_names_are_searched(
    searching: Searching,
) -> None:
    s = searching
    assert s.names(s.carol, "estimates") == ["carol/house-prices"]  # description
    assert s.names(s.carol, "owners") == ["carol/greeter"]  # README
    assert s.names(s.carol, "greeting") == ["carol/greeter"]  # tag
    assert s.names(s.carol, "floor_area") == ["carol/house-prices"]  # a field of its input
    assert s.names(s.carol, "bedrooms") == ["carol/house-prices"]
    assert s.names(s.carol, "nothing-like-this") == []


def test_a_name_match_ranks_above_a_readme_match(searching: Searching) -> None:
    # "house" is in house-prices' name and only in greeter's README ("houses", by prefix)
    assert searching.names(searching.carol, "house") == ["carol/house-prices", "carol/greeter"]
    recent = searching.names(searching.carol, "house", sort="recent")
    assert recent == ["carol/greeter", "carol/house-prices"]  # greeter was published last


def test_only_what_the_caller_may_read_is_found(searching: Searching) -> None:
    s = searching
    assert s.names(s.dave) == []
    assert s.names(s.dave, "house") == []
    s.platform.catalog.update_model(s.carol, "carol", "greeter", visibility="public")
    try:
        assert s.names(s.dave, "house") == ["carol/greeter"]
        assert s.names(s.dave, visibility="public") == ["carol/greeter"]
    finally:
        s.platform.catalog.update_model(s.carol, "carol", "greeter", visibility="private")


def test_filters(searching: Searching) -> None:
    s = searching
    assert set(s.names(s.carol, owner="carol")) == {"carol/house-prices", "carol/greeter"}
    assert s.names(s.carol, owner="dave") == []
    assert set(s.names(s.carol, status="ready", runtime="python")) == {
        "carol/house-prices", "carol/greeter",
    }  # fmt: skip
    assert s.names(s.carol, status="failed") == []
    found = s.search.search(s.carol, SearchQuery(owner="nobody"))
    assert (found.hits, found.owners, found.runtimes) == ([], ["carol"], ["python"])


def test_a_description_change_is_found_at_once(searching: Searching) -> None:
    s = searching
    s.platform.catalog.update_model(s.carol, "carol", "greeter", description="waves at whales")
    assert s.names(s.carol, "whales") == ["carol/greeter"]
    assert s.search.readme(s.carol, "carol", "greeter").startswith("# Greeter")


def test_query_words_never_carry_syntax() -> None:
    assert words_of('foo* OR "bar" NEAR(baz) -x :y') == [
        "foo",
        "or",
        "bar",
        "near",
        "baz",
        "x",
        "y",
    ]
    assert len(words_of("a " * 100)) == 16


def test_a_readme_is_read_from_zip_and_tar_archives(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import tarfile
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model/README.md", "zipped")
        zf.writestr("model/deep/er/README.md", "too deep")
    assert readme_in(buffer.getvalue()) == "zipped"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = b"tarred"
        info = tarfile.TarInfo("./README.md")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert readme_in(buffer.getvalue()) == "tarred"
    assert readme_in(b"not an archive") == ""
