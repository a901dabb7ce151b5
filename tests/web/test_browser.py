"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against ``algora
serve`` as its own process.

Never ``playwright install``: the browser is the system's (``apt-get install chromium``, which
``scripts/services.sh`` does). Without it these tests are skipped, saying so.

The journey takes screenshots of the main pages; with ``ALGORA_UPDATE_SCREENSHOTS=1`` they are
also written to ``docs/ui/`` (see docs/ui.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.testing import RunningServer, write_model

from ..helpers import new_users
from .conftest import HELLO, IN_CHROMIUM, browser_sign_in, keep_screenshots, publish_models

pytestmark = IN_CHROMIUM


class Site:
    def __init__(self, server: RunningServer, keys: dict[str, str]) -> None:
        self.server = server
        self.url = server.url
        self.keys = keys


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with RunningServer(tmp_path_factory.mktemp("ui-server") / "data") as server:
        with server.client() as admin:
            keys = new_users(admin, "ann", "bob")
        with server.client(keys["ann"]) as ann, server.client(keys["bob"]) as bob:
            publish_models(tmp_path_factory.mktemp("ui-models"), ann, bob)
        yield Site(server, keys)


def _sign_in(page: Any, site: Site, who: str) -> None:
    browser_sign_in(page, site.url, site.keys[who])


def test_a_person_signs_in_searches_tries_a_model_manages_keys_and_signs_out(
    site: Site, chromium: Any, tmp_path: Path
) -> None:
    context = chromium.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    shots = tmp_path / "shots"
    shots.mkdir()

    page.goto(f"{site.url}/ui/")
    page.get_by_label("API key").wait_for()
    page.screenshot(path=shots / "signin.png")
    page.get_by_label("API key").fill(site.keys["ann"])
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_url(f"{site.url}/ui/")
    session = next(c for c in context.cookies() if c["name"] == "algora_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["secure"] is False  # plain http here; Secure over https (HTTP tests)
    assert page.evaluate("document.cookie") == ""  # out of scripts' reach

    page.get_by_label("Search models").fill("zebracorn")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/ui/?q=zebracorn*")
    results = page.locator("ul.models h2 a")
    assert results.all_inner_texts() == ["ann/sentiment"]
    page.get_by_label("Search models").fill("")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    page.screenshot(path=shots / "catalog.png")

    page.get_by_role("link", name="bob/translator").click()
    page.wait_for_url("**/ui/models/bob/translator")
    page.go_back()
    page.get_by_role("link", name="ann/sentiment").click()
    page.wait_for_url("**/ui/models/ann/sentiment")
    assert page.locator("main script").count() == 0
    assert page.locator(".markdown img[onerror]").count() == 0
    assert "<script>" in page.locator(".markdown").inner_text()  # shown as text, inert
    assert page.get_by_role("link", name="a trap").count() == 0

    page.get_by_label("Input", exact=True).fill('"browser"')
    page.get_by_label("JSON", exact=True).check()
    page.get_by_role("button", name="Call ann/sentiment").click()
    page.locator("#output").wait_for()
    assert page.locator("#output").inner_text() == "Hello browser"
    assert "ms (model)" in page.locator("#answer").inner_text()
    page.screenshot(path=shots / "model.png", full_page=True)

    page.get_by_role("link", name="Keys").click()
    page.wait_for_url("**/ui/keys")
    page.get_by_label("Name", exact=True).fill("from the browser")
    page.get_by_label("keys:manage").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("sim")
    page.screenshot(path=shots / "keys.png", mask=[page.get_by_label("Secret")], full_page=True)
    key_id = page.locator(".secret h2").inner_text().split()[1]
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.wait_for_url("**/ui/keys")
    assert "revoked" in page.locator(f"#key-{key_id}").inner_text()
    with site.server.client(secret) as revoked:
        assert revoked.request("GET", "/api/v1/models").status_code == 401

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/signin")
    assert not [c for c in context.cookies() if c["name"] == "algora_session"]
    page.goto(f"{site.url}/ui/keys")
    assert page.url.startswith(f"{site.url}/ui/signin")
    assert dialogs == []  # no README script ever ran
    context.close()

    keep_screenshots(shots)


def test_another_owners_private_model_is_404_and_a_form_without_its_token_is_refused(
    site: Site, chromium: Any
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    _sign_in(page, site, "bob")
    assert "ann/secret" not in page.locator("main").inner_text()
    hidden = page.goto(f"{site.url}/ui/models/ann/secret")
    assert hidden is not None and hidden.status == 404
    assert page.get_by_role("heading", name="Not Found").count() == 1

    page.goto(f"{site.url}/ui/keys")
    page.evaluate("document.querySelector('form[action$=\"/keys\"] input[name=csrf]').remove()")
    page.get_by_label("Name", exact=True).fill("no token")
    with page.expect_response(f"{site.url}/ui/keys") as posted:
        page.get_by_role("button", name="Create key").click()
    assert posted.value.status == 403
    assert "CSRF token" in page.locator("main").inner_text()
    with site.server.client(site.keys["bob"]) as bob:
        names = [k["name"] for k in bob.request("GET", "/api/v1/keys").json()]
    assert "no token" not in names
    context.close()


def test_an_approver_reads_the_charts_and_approves_a_promotion(
    chromium: Any, tmp_path: Path
) -> None:
    env = {"ALGORA_PROTECTED_ALIASES": '["production"]'}
    with RunningServer(tmp_path / "data", env=env) as server:
        with server.client() as admin:
            keys = new_users(admin, "ann")
        folder = write_model(tmp_path / "ranker", "ranker", HELLO)
        with server.client(keys["ann"]) as ann:
            for version in ("1.0.0", "1.1.0"):
                ann.publish(folder, owner="ann", version=version)
            for word in ("a", "b", "c"):
                assert ann.model("ann/ranker").call(word) == f"Hello {word}"
        requester = chromium.new_context()
        page = requester.new_page()
        browser_sign_in(page, server.url, keys["ann"])
        page.goto(f"{server.url}/ui/models/ann/ranker")
        assert page.get_by_label("Alias to move").input_value() == "production"
        page.get_by_label("Version to point it at").select_option("1.1.0")
        page.get_by_label("Why").fill("better ranking")
        page.get_by_role("button", name="Request the promotion").click()
        page.wait_for_url("**/ui/models/ann/ranker*")
        pending = page.locator("#aliases-heading ~ ul li").first.inner_text()
        assert "production → 1.1.0" in pending and "better ranking" in pending
        # she may not approve her own request: the page says why
        page.get_by_role("button", name="Approve: move production to 1.1.0").click()
        assert "another principal" in page.locator("#promotion-error").inner_text()
        requester.close()

        context = chromium.new_context()
        page = context.new_page()
        browser_sign_in(page, server.url, server.key)
        calls = page.locator("figure.chart figcaption").first
        deadline = time.monotonic() + 20  # the statistics are written every few seconds
        while True:
            page.goto(f"{server.url}/ui/models/ann/ranker")
            if "3 in all" in calls.inner_text() or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "Calls" in calls.inner_text() and "3 in all" in calls.inner_text()
        assert page.get_by_role("img", name="Calls over the last 1h: 3 in all").count() == 1
        page.get_by_label("Note").fill("ship it")
        page.get_by_role("button", name="Approve: move production to 1.1.0").click()
        page.wait_for_url("**/ui/models/ann/ranker*")
        row = page.locator("tr", has=page.locator("td", has_text="production")).first
        assert "1.1.0" in row.inner_text()
        assert page.get_by_role("button", name="Approve: move production to 1.1.0").count() == 0
        context.close()
