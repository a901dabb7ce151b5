"""What the web UI's tests share: models with READMEs, published by two people, and signing
in through the UI's own form."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.sdk.client import Client
from algora.testing import write_model

CHROMIUM = Path("/usr/bin/chromium")
DOCS_UI = Path(__file__).resolve().parents[2] / "docs" / "ui"
IN_CHROMIUM = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not at /usr/bin/chromium: `apt-get install chromium` "
        "(scripts/services.sh installs it; CI does)",
    ),
]
"""The marks of a module of browser tests."""

HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
HOSTILE_README = textwrap.dedent(
    """
    # Sentiment

    Scores the **mood** of a sentence, trained on zebracorn reviews.

    <script>alert("pwned")</script>
    <img src="x" onerror="alert('pwned')">

    [a trap](javascript:alert('pwned')) and [the docs](https://example.org/docs)
    """
)


def publish_models(root: Path, ann: Client, bob: Client) -> None:
    """ann/sentiment (with a hostile README) and ann/secret, private; bob/translator, public."""
    about = 'description = "Reads the mood of text"\ntags = ["nlp", "mood"]\n'
    folder = write_model(
        root / "sentiment", "sentiment", HELLO, files={"README.md": HOSTILE_README},
        extra_manifest=about + '\n[example]\ninput = "world"\n',
    )  # fmt: skip
    ann.publish(folder, owner="ann")
    ann.publish(write_model(root / "secret", "secret", HELLO), owner="ann")
    bob.publish(
        write_model(root / "translator", "translator", HELLO, files={"README.md": "Translates."}),
        owner="bob",
    )
    made_public = bob.request(
        "PATCH", "/api/v1/models/bob/translator", json={"visibility": "public"}
    )
    assert made_public.status_code == 200, made_public.text


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


def sign_in(http: Any, key: str) -> None:
    """Sign ``http`` (a client that keeps cookies) in through the sign-in form."""
    page = http.get("/ui/signin")
    assert page.status_code == 200
    answer = http.post(
        "/ui/signin", data={"csrf": csrf_in(page.text), "key": key, "next": "/ui/"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def keep_screenshots(shots: Path) -> None:
    """Check the screenshots' sizes; with ``ALGORA_UPDATE_SCREENSHOTS=1``, copy them to
    ``docs/ui/`` (see docs/ui.md)."""
    for shot in shots.iterdir():
        assert shot.stat().st_size < 400_000, shot
    if os.environ.get("ALGORA_UPDATE_SCREENSHOTS") == "1":
        DOCS_UI.mkdir(exist_ok=True)
        for shot in shots.iterdir():
            shutil.copyfile(shot, DOCS_UI / shot.name)


def browser_sign_in(page: Any, url: str, key: str) -> None:
    """Sign a Playwright page in through the sign-in form, as a person would."""
    page.goto(f"{url}/ui/")
    assert page.url.startswith(f"{url}/ui/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/")
