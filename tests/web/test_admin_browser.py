"""The administration pages in a real browser (Debian's Chromium, Playwright) against ``algora
serve`` as its own process: an admin makes a user and an organization and manages its members;
a model's owner grants, revokes and changes its visibility; what others see follows.

The journey takes screenshots of the pages (``ALGORA_UPDATE_SCREENSHOTS=1`` copies them to
``docs/ui/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from algora.testing import RunningServer

from ..helpers import new_users
from .conftest import IN_CHROMIUM, browser_sign_in, keep_screenshots, publish_models

pytestmark = IN_CHROMIUM


def test_an_admin_and_an_owner_manage_people_organizations_and_access(
    chromium: Any, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    with RunningServer(tmp_path / "data") as server:
        with server.client() as admin:
            keys = new_users(admin, "ann", "bob")
        with server.client(keys["ann"]) as ann, server.client(keys["bob"]) as bob:
            publish_models(tmp_path / "models", ann, bob)

        context = chromium.new_context(viewport={"width": 1100, "height": 720})
        page = context.new_page()
        browser_sign_in(page, server.url, server.key)
        page.get_by_role("link", name="Users").click()
        page.wait_for_url("**/ui/admin/users")
        page.get_by_label("Name").fill("dan")
        page.get_by_role("button", name="Create user and first key").click()
        secret = page.get_by_label("Secret of key").input_value()
        assert secret.startswith("sim")
        assert "dan" in page.locator("#principal-dan").inner_text()
        page.screenshot(path=shots / "users.png", mask=[page.get_by_label("Secret of key")])
        with server.client(secret) as dan:
            assert dan.request("GET", "/api/v1/models").status_code == 200

        page.get_by_role("link", name="Organizations").click()
        page.get_by_label("Name").fill("lab")
        page.get_by_role("button", name="Create organization").click()
        page.wait_for_url("**/ui/admin/orgs/lab")
        for member in ("ann", "dan"):
            page.get_by_label("User or service account").fill(member)
            page.get_by_role("button", name="Save member").click()
            page.wait_for_url("**/ui/admin/orgs/lab")
        page.get_by_label("Role of ann", exact=True).select_option("admin")
        page.get_by_role("button", name="Change the role of ann").click()
        page.wait_for_url("**/ui/admin/orgs/lab")
        assert page.get_by_label("Role of ann", exact=True).input_value() == "admin"
        page.get_by_role("button", name="Remove dan").click()
        page.wait_for_url("**/ui/admin/orgs/lab")
        assert page.locator("#member-dan").count() == 0
        page.screenshot(path=shots / "organization.png", full_page=True)
        context.close()

        owner = chromium.new_context(viewport={"width": 1100, "height": 720})
        page = owner.new_page()
        browser_sign_in(page, server.url, keys["ann"])
        page.goto(f"{server.url}/ui/models/ann/secret")
        page.get_by_role("link", name="Access: visibility and grants").click()
        page.wait_for_url("**/ui/models/ann/secret/access")
        page.get_by_label("User, service account or organization").fill("bob")
        page.get_by_label("Right", exact=True).select_option("call")
        page.get_by_role("button", name="Grant", exact=True).click()
        page.wait_for_url("**/ui/models/ann/secret/access")
        assert "call" in page.locator("#grant-bob").inner_text()
        page.screenshot(path=shots / "access.png", full_page=True)
        with server.client(keys["bob"]) as bob:
            assert bob.model("ann/secret").call("bob") == "Hello bob"
            page.get_by_role("button", name="Revoke the grant of bob").click()
            page.wait_for_url("**/ui/models/ann/secret/access")
            assert page.locator("#grant-bob").count() == 0
            assert bob.request("GET", "/api/v1/models/ann/secret").status_code == 404
            page.get_by_label("public", exact=True).check()
            page.get_by_role("button", name="Save visibility").click()
            page.wait_for_url("**/ui/models/ann/secret/access")
            assert bob.request("GET", "/api/v1/models/ann/secret").status_code == 200
        owner.close()

        stranger = chromium.new_context()
        page = stranger.new_page()
        browser_sign_in(page, server.url, keys["bob"])
        refused = page.goto(f"{server.url}/ui/models/ann/secret/access")
        assert refused is not None and refused.status == 403  # he reads it, may not manage it
        assert page.get_by_role("link", name="Access: visibility and grants").count() == 0
        hidden = page.goto(f"{server.url}/ui/admin/orgs/lab")
        assert hidden is not None and hidden.status == 404
        stranger.close()
    keep_screenshots(shots)
