"""What the web UI's tests share: models with READMEs, published by two people, and signing
in through the UI's own form."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from algora.sdk.client import Client
from algora.testing import write_model

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
