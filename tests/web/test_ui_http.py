"""The web UI over HTTP (in-process): sessions, CSRF, what each person sees, try-it, keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from algora.db.shared_state import WebSession
from algora.db.tables import utcnow
from algora.platform import Platform

from ..conftest import InProcess, in_process
from ..helpers import new_users
from .conftest import csrf_in, publish_models, sign_in


class World:
    def __init__(self, gateway: InProcess, keys: dict[str, str]) -> None:
        self.gateway = gateway
        self.keys = {"admin": gateway.key, **keys}

    @property
    def platform(self) -> Platform:
        return self.gateway.http.app.state.platform  # type: ignore[attr-defined,no-any-return]

    def browser(self, base_url: str = "http://testserver") -> TestClient:
        """A client with its own cookies, as a browser of its own, on the gateway's event loop
        (where its pools' workers live)."""
        http = TestClient(self.gateway.http.app, base_url=base_url, raise_server_exceptions=False)
        http.portal = self.gateway.http.portal
        return http

    def signed_in(self, who: str) -> TestClient:
        http = self.browser()
        sign_in(http, self.keys[who])
        return http


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with in_process(tmp_path_factory.mktemp("web-ui"), default_call_timeout=20) as gateway:
        keys = new_users(gateway.client, "ann", "bob")
        world = World(gateway, keys)
        ann, bob = gateway.client.__class__, gateway.client.__class__
        root = tmp_path_factory.mktemp("web-models")
        publish_models(
            root,
            ann("http://testserver", keys["ann"], http=gateway.http),
            bob("http://testserver", keys["bob"], http=gateway.http),
        )
        yield world


# --------------------------------------------------------------------------- signing in
def test_pages_send_who_is_not_signed_in_to_the_sign_in_form(world: World) -> None:
    http = world.browser()
    door = http.get("/ui", follow_redirects=False)
    assert (door.status_code, door.headers["location"]) == (308, "/ui/")
    page = http.get("/ui/models/ann/sentiment", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/signin?next=/ui/models/ann/sentiment"
    form = http.get(page.headers["location"])
    assert 'name="next" value="/ui/models/ann/sentiment"' in form.text
    assert '<label for="key">API key</label>' in form.text


def test_the_session_cookie_is_http_only_strict_and_secure_over_https(world: World) -> None:
    proxied = {"X-Forwarded-Proto": "https"}  # TLS ended at a proxy in front
    cases = (("http://testserver", {}, False), ("https://testserver", {}, True),
             ("http://testserver", proxied, True))  # fmt: skip
    for base, headers, secure in cases:
        http = world.browser(base)
        form = http.get("/ui/signin")
        answer = http.post(
            "/ui/signin", data={"csrf": csrf_in(form.text), "key": world.keys["ann"]},
            headers=headers, follow_redirects=False,
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("algora_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/ui"} <= flags
        assert ("secure" in flags) is secure
        token = cookie.split(";")[0].split("=", 1)[1]
        with world.platform.sessions() as session:  # only its hash is stored
            hashes = set(session.scalars(select(WebSession.token_hash)))
        assert token not in hashes
        assert hashlib.sha256(token.encode()).hexdigest() in hashes


def test_a_wrong_key_is_refused_on_the_form_and_nothing_is_signed_in(world: World) -> None:
    http = world.browser()
    form = http.get("/ui/signin")
    answer = http.post("/ui/signin", data={"csrf": csrf_in(form.text), "key": "simNOPE"})
    assert answer.status_code == 401
    assert "the API key is unknown, revoked or expired" in answer.text
    assert "algora_session" not in http.cookies


def test_the_sign_in_form_needs_its_csrf_token(world: World) -> None:
    http = world.browser()
    http.get("/ui/signin")
    refused = http.post("/ui/signin", data={"key": world.keys["ann"]}, follow_redirects=False)
    assert refused.status_code == 403
    assert "CSRF token" in refused.text
    assert "algora_session" not in http.cookies
    elsewhere = world.browser()  # a token from another browser is no good either
    stolen = csrf_in(world.browser().get("/ui/signin").text)
    elsewhere.get("/ui/signin")
    again = elsewhere.post("/ui/signin", data={"csrf": stolen, "key": world.keys["ann"]})
    assert again.status_code == 403


def test_a_post_with_no_or_a_wrong_csrf_token_is_refused(world: World) -> None:
    http = world.signed_in("ann")
    for data in ({"name": "sneaky", "scope:call": "on"}, {"csrf": "x" * 64, "name": "sneaky"}):
        refused = http.post("/ui/keys", data=data)
        assert refused.status_code == 403, refused.text
        assert "CSRF token" in refused.text
        assert "<!doctype html>" in refused.text  # a page, not JSON
    names = [k["name"] for k in world.gateway.client.request(
        "GET", "/api/v1/keys", params={"principal": "ann"}).json()]  # fmt: skip
    assert "sneaky" not in names
    refused = http.post("/ui/signout", data={})
    assert refused.status_code == 403
    assert http.get("/ui/").status_code == 200  # still signed in


def test_a_post_from_another_origin_is_refused(world: World) -> None:
    http = world.signed_in("ann")
    page = http.get("/ui/keys")
    refused = http.post(
        "/ui/keys", data={"csrf": csrf_in(page.text), "name": "x", "scope:call": "on"},
        headers={"Origin": "http://evil.example"},
    )  # fmt: skip
    assert refused.status_code == 403


def test_signing_out_ends_the_session_on_the_server(world: World) -> None:
    http = world.signed_in("ann")
    token = http.cookies["algora_session"]
    page = http.get("/ui/")
    out = http.post("/ui/signout", data={"csrf": csrf_in(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/signin"
    replayed = world.browser()
    replayed.cookies.set("algora_session", token, domain="testserver.local", path="/ui")
    again = replayed.get("/ui/", follow_redirects=False)
    assert again.status_code == 303  # the old cookie opens nothing


def test_a_session_expires(world: World) -> None:
    http = world.signed_in("bob")
    assert http.get("/ui/", follow_redirects=False).status_code == 200
    with world.platform.sessions() as session:  # fault injection: the session's time ran out
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert http.get("/ui/", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------ reading
def test_the_catalog_shows_exactly_what_the_signed_in_person_may_read(world: World) -> None:
    ann, bob = world.signed_in("ann"), world.signed_in("bob")
    seen_by_ann = set(re.findall(r'href="/ui/models/([^"]+)"', ann.get("/ui/").text))
    seen_by_bob = set(re.findall(r'href="/ui/models/([^"]+)"', bob.get("/ui/").text))
    assert seen_by_ann == {"ann/sentiment", "ann/secret", "bob/translator"}
    assert seen_by_bob == {"bob/translator"}
    hidden = bob.get("/ui/models/ann/secret")
    assert hidden.status_code == 404
    assert "text/html" in hidden.headers["content-type"]
    assert "ann/secret" not in bob.get("/ui/", params={"q": "secret"}).text
    tried = bob.post("/ui/models/ann/secret/try", data={"csrf": csrf_in(bob.get("/ui/").text)})
    assert tried.status_code == 404
    log = bob.get("/ui/models/ann/secret/versions/1.0.0/log")
    assert log.status_code == 404


def test_search_and_filters(world: World) -> None:
    http = world.signed_in("ann")

    def found(**params: str) -> list[str]:
        page = http.get("/ui/", params=params)
        assert page.status_code == 200, page.text
        return re.findall(r'<h2><a href="/ui/models/([^"]+)"', page.text)

    assert found(q="zebracorn") == ["ann/sentiment"]  # a word of its README
    assert found(q="mood") == ["ann/sentiment"]  # its tag and description
    assert found(q="transl") == ["bob/translator"]  # a prefix of its name
    assert found(q="zebracorn translator") == []  # every word must match
    assert found(owner="bob") == ["bob/translator"]
    assert found(visibility="public") == ["bob/translator"]
    assert set(found(status="ready")) == {"ann/sentiment", "ann/secret", "bob/translator"}
    assert found(runtime="node") == []
    assert found(sort="recent")[0] == "bob/translator"  # published last
    assert found(q='"); DROP TABLE models; --') == []  # only words reach the database
    bad = http.get("/ui/", params={"sort": "sideways"})
    assert bad.status_code == 400
    assert "text/html" in bad.headers["content-type"]


def test_the_model_page_renders_its_readme_inert(world: World) -> None:
    page = world.signed_in("ann").get("/ui/models/ann/sentiment")
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html.lower()
    assert "onerror=" not in html.replace("onerror=&quot;", "")  # shown as text, not an attribute
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert '<a href="https://example.org/docs">the docs</a>' in html
    assert "<strong>mood</strong>" in html
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for shown in (
        "1.0.0",
        "ready",
        "/ui/models/ann/sentiment/versions/1.0.0/log",
        "&#34;world&#34;",
    ):
        assert shown in html


def test_the_build_log_page(world: World) -> None:
    page = world.signed_in("ann").get("/ui/models/ann/sentiment/versions/1.0.0/log")
    assert page.status_code == 200
    assert "Build log of" in page.text
    assert "ready" in page.text


def test_try_it_calls_the_model_with_the_signed_in_rights(world: World) -> None:
    http = world.signed_in("bob")
    page = http.get("/ui/models/bob/translator")
    answer = http.post(
        "/ui/models/bob/translator/try",
        data={"csrf": csrf_in(page.text), "input": '"there"', "kind": "json"},
    )
    assert answer.status_code == 200, answer.text
    assert '<pre id="output">Hello there</pre>' in answer.text
    assert re.search(r"in [0-9.]+ ms \(model\)", answer.text)
    as_text = http.post(
        "/ui/models/bob/translator/try",
        data={"csrf": csrf_in(page.text), "input": "you", "kind": "text", "version": "1.0.0"},
    )
    assert "Hello you" in as_text.text
    broken = http.post(
        "/ui/models/bob/translator/try",
        data={"csrf": csrf_in(page.text), "input": "{not json", "kind": "json"},
    )
    assert broken.status_code == 400
    assert "the input is not JSON" in broken.text
    audit = world.gateway.client.request(
        "GET", "/api/v1/audit", params={"model": "bob/translator", "principal": "bob"}
    )
    assert audit.status_code == 200, audit.text
    calls = [e for e in audit.json() if e["action"] == "model.call"]
    assert len(calls) == 3
    assert {e["status"] for e in calls} == {200, 400}


def test_a_key_without_the_read_scope_sees_no_pages(world: World) -> None:
    made = world.gateway.client.request(
        "POST", "/api/v1/keys", json={"name": "caller", "scopes": ["call"], "principal": "bob"}
    )
    assert made.status_code == 201, made.text
    http = world.browser()
    sign_in(http, made.json()["key"])
    refused = http.get("/ui/")
    assert refused.status_code == 403
    assert "models:read" in refused.text


# --------------------------------------------------------------------------------- keys
def test_create_and_revoke_a_key(world: World) -> None:
    http = world.signed_in("ann")
    page = http.get("/ui/keys")
    assert page.status_code == 200
    created = http.post(
        "/ui/keys",
        data={"csrf": csrf_in(page.text), "name": "ci", "scope:call": "on",
              "scope:models:read": "on", "expires_in_days": "30"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    secret = re.search(r'id="secret" readonly value="([^"]+)"', created.text)
    assert secret is not None
    key_id = re.search(r"<h2>Key ([0-9a-f]+) created</h2>", created.text)
    assert key_id is not None
    assert secret.group(1) not in http.get("/ui/keys").text  # shown once
    world.keys["ann-ci"] = secret.group(1)
    assert world.signed_in("ann-ci").get("/ui/").status_code == 200  # it works
    revoked = http.post(
        f"/ui/keys/{key_id.group(1)}/revoke", data={"csrf": csrf_in(page.text)},
        follow_redirects=False,
    )  # fmt: skip
    assert revoked.status_code == 303
    row = http.get("/ui/keys").text.split(f'id="key-{key_id.group(1)}"')[1].split("</tr>")[0]
    assert "revoked" in row
    refused = world.browser().post("/ui/signin", data={"key": secret.group(1)})
    assert refused.status_code == 403  # no form token: refused before the key is even read


def test_a_wider_key_than_the_session_is_refused_and_revoking_the_session_key_ends_it(
    world: World,
) -> None:
    made = world.gateway.client.request(
        "POST", "/api/v1/keys",
        json={"name": "narrow", "scopes": ["models:read", "keys:manage"], "principal": "bob"},
    )  # fmt: skip
    http = world.browser()
    sign_in(http, made.json()["key"])
    page = http.get("/ui/keys")
    wider = http.post(
        "/ui/keys", data={"csrf": csrf_in(page.text), "name": "wide", "scope:call": "on"}
    )
    assert wider.status_code == 403
    assert "may only narrow" in wider.text
    own = made.json()["key_id"]
    revoked = http.post(f"/ui/keys/{own}/revoke", data={"csrf": csrf_in(page.text)})
    assert revoked.url.path == "/ui/signin"  # the session went with its key


def test_unknown_pages_and_keys_are_html_404s(world: World) -> None:
    http = world.signed_in("ann")
    for path in ("/ui/nothing-here", "/ui/models/ann/nope"):
        page = http.get(path)
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]
    page = http.get("/ui/keys")
    missing = http.post("/ui/keys/0000/revoke", data={"csrf": csrf_in(page.text)})
    assert missing.status_code == 404


def test_the_stylesheet_is_cached_by_its_etag(world: World) -> None:
    http = world.browser()
    sheet = http.get("/ui/static/algora.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert "max-age" in sheet.headers["cache-control"]
    etag = sheet.headers["etag"]
    again = http.get("/ui/static/algora.css", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert http.get("/ui/static/../site.py").status_code == 404


def test_the_ui_adds_nothing_to_the_api_document(tmp_path: Path) -> None:
    with in_process(tmp_path) as gateway:
        document = gateway.http.get("/api/v1/openapi.json", headers=gateway.auth).json()
    assert not [path for path in document["paths"] if path.startswith("/ui")]


# ---------------------------------------------------------------------------- audit log
def test_the_audit_log_page_searches_by_caller_model_and_action(world: World) -> None:
    world.signed_in("ann")  # one more ui.signin event of ann's
    admin = world.signed_in("admin")
    assert 'href="/ui/audit"' in admin.get("/ui/").text

    def rows(**params: str) -> list[list[str]]:
        page = admin.get("/ui/audit", params=params)
        assert page.status_code == 200, page.text
        body = page.text.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in page.text else ""
        return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in body.split("<tr>")[1:]]

    signins = rows(principal="ann", action="ui.signin")
    assert signins and all(r[1] == "ann" and r[2] == "ui.signin" for r in signins)
    assert {r[2] for r in rows(action="ui.sign*")} <= {"ui.signin", "ui.signout"}
    assert rows(action="ui.sign*")
    calls = rows(model="bob/translator", action="model.call")
    assert all(r[3] == "bob/translator" for r in calls)
    assert rows(principal="nobody-at-all") == []
    assert rows(until="2000-01-01") == []
    bad = admin.get("/ui/audit", params={"since": "last tuesday"})
    assert bad.status_code == 400
    assert "2026-01-31" in bad.text

    bob = world.signed_in("bob")  # no audit:read: neither the link nor the page
    assert 'href="/ui/audit"' not in bob.get("/ui/").text
    assert bob.get("/ui/audit").status_code == 403


def test_the_model_page_charts_its_calls_from_the_statistics(world: World) -> None:
    http = world.signed_in("bob")
    page = http.get("/ui/models/bob/translator")
    for word in ("one", "two"):
        tried = http.post(
            "/ui/models/bob/translator/try",
            data={"csrf": csrf_in(page.text), "input": word, "kind": "text"},
        )
        assert tried.status_code == 200, tried.text
    world.gateway.http.portal.call(world.platform.rollups.flush)  # the periodic write, now
    charted = http.get("/ui/models/bob/translator")
    calls = re.search(r"<strong>Calls</strong> <span [^>]*>\(per 1m; (\d+) in all\)", charted.text)
    assert calls is not None and int(calls.group(1)) >= 2, charted.text
    assert charted.text.count("<polyline") >= 2  # calls and latency (no errors: no line)
    assert "<script" not in charted.text
    daily = http.get("/ui/models/bob/translator?window=30d")
    assert "per 1d" in daily.text and 'aria-current="page">last 30d' in daily.text
    assert http.get("/ui/models/bob/translator?window=5y").status_code == 400


def test_a_versions_environment_page_shows_its_lock_and_sbom(world: World) -> None:
    http = world.signed_in("bob")
    model = http.get("/ui/models/bob/translator")
    assert "/ui/models/bob/translator/versions/1.0.0/environment" in model.text
    page = http.get("/ui/models/bob/translator/versions/1.0.0/environment")
    assert page.status_code == 200, page.text
    assert 'id="lock"' in page.text and "Packages (SBOM)" in page.text
    assert "<script" not in page.text
    assert http.get("/ui/models/ann/secret/versions/1.0.0/environment").status_code == 404
    assert http.get("/ui/models/bob/translator/versions/9.9.9/environment").status_code == 404


def test_the_catalog_sorts_by_call_volume(world: World) -> None:
    ann = world.gateway.client.__class__(
        "http://testserver", world.keys["ann"], http=world.gateway.http
    )
    for n in range(12):
        assert ann.model("ann/secret").call(str(n)) == f"Hello {n}"
    world.gateway.http.portal.call(world.platform.rollups.flush)
    page = world.signed_in("ann").get("/ui/", params={"sort": "calls"})
    assert page.status_code == 200, page.text
    listed = re.findall(r'<h2><a href="/ui/models/([^"]+)"', page.text)
    assert listed[0] == "ann/secret" and set(listed) == {
        "ann/sentiment", "ann/secret", "bob/translator",
    }  # fmt: skip
    assert '<option value="calls" selected>' in page.text


def test_the_data_browser_lists_and_downloads_what_the_visitor_may_read(world: World) -> None:
    ann = {"Authorization": f"Simple {world.keys['ann']}"}
    http = world.gateway.http
    made = http.post("/v1/data/ann", json={"name": "photos"}, headers=ann)
    assert made.status_code in (200, 201), made.text
    folder = http.post("/v1/data/ann/photos", json={"name": "trip"}, headers=ann)
    assert folder.status_code in (200, 201), folder.text
    page_html = b"<html><script>alert(1)</script></html>"
    put = http.put("/v1/data/ann/photos/trip/index.html", content=page_html, headers=ann)
    assert put.status_code == 200, put.text

    mine = world.signed_in("ann")
    root = mine.get("/ui/data")
    assert root.status_code == 200 and 'href="/ui/data/ann"' in root.text
    listed = mine.get("/ui/data/ann/photos/trip")
    assert "index.html" in listed.text and f"{len(page_html)} bytes" in listed.text
    download = mine.get("/ui/data/ann/photos/trip/index.html")
    assert download.status_code == 200 and download.content == page_html
    assert download.headers["content-type"] == "application/octet-stream"  # never a page here
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"

    theirs = world.signed_in("bob").get("/ui/data/ann/photos/trip/index.html")
    assert theirs.status_code in (403, 404) and page_html not in theirs.content
    escape = mine.get("/ui/data/ann/photos/%2e%2e/%2e%2e/bob")  # as sent: no client resolves it
    assert escape.status_code == 400 and "text/html" in escape.headers["content-type"]
