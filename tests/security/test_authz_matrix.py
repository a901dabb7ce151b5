"""The authorization matrix, generated from the OpenAPI document.

Every operation the document lists, times every credential state (none, malformed, revoked,
expired, wrong scope, right scope), times every role (admin; owner, admin, member and viewer of
the organization that owns the model; an outsider), against concrete resources: the private
model ``acme/hello``, a key of the org's member, the spare user ``spare``. The oracle below says,
for each operation, which roles a right-scoped key may act for; the test counts the successes
the oracle does not allow (there must be none) and checks every refusal is the right one.

An operation without a declared permission (``x-algora-permission``) fails the test, and so
does one the oracle does not know: a new route must say what it needs and who may use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from algora.app import create_app
from algora.auth.bootstrap import create_key
from algora.auth.scopes import SCOPES
from algora.db.tables import ApiKey, Principal, utcnow
from algora.gateway.permissions import AUTHENTICATED, PERMISSION_KEY, PUBLIC, undeclared
from algora.sdk.client import Client
from algora.settings import Settings
from algora.testing import write_model

from ..conftest import HELLO_MODEL
from ..s3server import S3Server

ROLES = ("admin", "org-owner", "org-admin", "org-member", "org-viewer", "outsider")
STATES = ("none", "malformed", "revoked", "expired", "wrong-scope", "right-scope")
EVERYONE = frozenset(ROLES)
ORG = frozenset({"admin", "org-owner", "org-admin", "org-member", "org-viewer"})
PUBLISHERS = frozenset({"admin", "org-owner", "org-admin", "org-member"})
MANAGERS = frozenset({"admin", "org-owner", "org-admin"})
TARGET_KEY_OWNER = "org-member"

_MODEL = "/api/v1/models/{owner}/{name}"
_VERSION = _MODEL + "/versions/{version}"
_DATA = "/v1/data/{path}"
_CONNECTOR = "/v1/connector/{connector}/{path}"
_ALGO_DATA = "/v1/data/.algo{rest}"
_SESSION_DATA = "/v1/data/.session{rest}"
# (METHOD, path template) -> the roles a key with the right scope may act for.
ORACLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    ("POST", "/v1/algo/{owner}/{name}"): ORG,
    ("POST", "/v1/algo/{owner}/{name}/{spec}"): ORG,
    ("GET", "/v1/algorithms/{owner}/{name}"): ORG,
    ("GET", "/v1/algorithms/{owner}/{name}/versions"): ORG,
    ("GET", "/v1/algorithms/{owner}/{name}/versions/{version}"): ORG,
    # Source and builds (acme/hello was published from a folder: no repository, 404 once
    # authorized); creating makes a new model of acme's, as publishing would.
    ("POST", "/v1/algorithms/{owner}"): PUBLISHERS,
    ("POST", "/v1/algorithms/{owner}/{name}/compile"): PUBLISHERS,
    ("POST", "/v1/algorithms/{owner}/{name}/versions"): PUBLISHERS,
    ("GET", "/v1/algorithms/{owner}/{name}/builds"): ORG,
    ("GET", "/v1/algorithms/{owner}/{name}/builds/{build_id}"): ORG,
    ("GET", "/v1/algorithms/{owner}/{name}/builds/{build_id}/logs"): PUBLISHERS,  # like source
    ("GET", "/v1/algorithms/{owner}/{name}/scm/status"): ORG,
    # git smart HTTP: source is read and written by those who may publish the model.
    ("GET", "/git/{owner}/{name}.git/info/refs"): PUBLISHERS,
    ("POST", "/git/{owner}/{name}.git/git-upload-pack"): PUBLISHERS,
    ("POST", "/git/{owner}/{name}.git/git-receive-pack"): PUBLISHERS,
    # Algorithm settings: update and secrets by the model's managers.
    ("PUT", "/v1/algorithms/{owner}/{name}"): MANAGERS,
    ("GET", "/v1/algorithms/{algorithm_id}/secrets"): MANAGERS,
    ("POST", "/v1/algorithms/{algorithm_id}/secrets"): MANAGERS,
    ("GET", "/v1/secret-provider"): EVERYONE,
    # Algorithmia's users and organizations (acme): users by admins, organizations by anyone,
    # read by their members, changed by their owners and admins.
    ("POST", "/v1/users"): frozenset({"admin"}),
    ("GET", "/v1/organization/types"): EVERYONE,
    ("POST", "/v1/organizations"): EVERYONE,
    ("GET", "/v1/organizations/{org}"): ORG,
    ("PUT", "/v1/organizations/{org}"): MANAGERS,
    ("PUT", "/v1/organizations/{org}/members/{member}"): MANAGERS,
    ("GET", "/api/v1/models"): EVERYONE,  # a filtered list
    ("GET", _MODEL): ORG,
    ("PATCH", _MODEL): MANAGERS,
    ("GET", _MODEL + "/versions"): ORG,
    ("POST", _MODEL + "/versions"): PUBLISHERS,
    ("GET", _VERSION): ORG,
    ("PATCH", _VERSION): MANAGERS,
    ("GET", _VERSION + "/lock"): ORG,
    ("GET", _VERSION + "/schema"): ORG,
    ("GET", _VERSION + "/lineage"): ORG,
    ("GET", _VERSION + "/sbom"): ORG,
    ("GET", _VERSION + "/log"): ORG,
    ("GET", _MODEL + "/grants"): MANAGERS,
    ("PUT", _MODEL + "/grants/{principal}"): MANAGERS,
    ("DELETE", _MODEL + "/grants/{principal}"): MANAGERS,
    # Aliases: read like the model; moved and promoted by its managers. The promotion
    # request the matrix approves does not exist: 404 once authorized.
    ("GET", _MODEL + "/aliases"): ORG,
    ("GET", _MODEL + "/stats"): ORG,
    ("GET", _MODEL + "/aliases/{alias}/compare"): ORG,
    # Drift: read like the model (acme/hello has none: 404 once authorized, saying so).
    ("GET", _MODEL + "/drift"): ORG,
    # Feedback on a call of acme/hello (req-matrix): by those who may call it (then 409).
    ("POST", "/api/v1/feedback"): ORG,
    ("GET", _MODEL + "/aliases/{alias}"): ORG,
    ("PUT", _MODEL + "/aliases/{alias}"): MANAGERS,
    ("DELETE", _MODEL + "/aliases/{alias}"): MANAGERS,
    # Alert rules: read and changed by the model's managers only (their webhooks are theirs);
    # rule 999999 does not exist: 404 once authorized.
    ("GET", _MODEL + "/alerts"): MANAGERS,
    ("POST", _MODEL + "/alerts"): MANAGERS,
    ("DELETE", _MODEL + "/alerts/{rule_id}"): MANAGERS,
    ("GET", _MODEL + "/alerts/{rule_id}/deliveries"): MANAGERS,
    ("GET", "/api/v1/promotions"): EVERYONE,  # filtered: the models one manages
    ("GET", _MODEL + "/promotions"): MANAGERS,
    ("POST", _MODEL + "/promotions"): MANAGERS,
    ("GET", _MODEL + "/promotions/{promotion_id}"): MANAGERS,
    ("POST", _MODEL + "/promotions/{promotion_id}/approve"): MANAGERS,
    ("POST", _MODEL + "/promotions/{promotion_id}/reject"): MANAGERS,
    ("GET", "/api/v1/whoami"): EVERYONE,
    ("GET", "/api/v1/keys"): EVERYONE,  # one's own keys
    ("POST", "/api/v1/keys"): EVERYONE,
    ("DELETE", "/api/v1/keys/{key_id}"): frozenset({"admin", TARGET_KEY_OWNER}),
    ("PATCH", "/api/v1/keys/{key_id}"): frozenset({"admin", TARGET_KEY_OWNER}),
    ("GET", "/api/v1/keys/{key_id}/model-limits"): frozenset({"admin", TARGET_KEY_OWNER}),
    ("PUT", "/api/v1/keys/{key_id}/model-limits"): frozenset({"admin", TARGET_KEY_OWNER}),
    ("GET", "/api/v1/principals"): EVERYONE,  # a filtered list
    ("POST", "/api/v1/principals"): frozenset({"admin"}),
    ("PATCH", "/api/v1/principals/{name}"): frozenset({"admin"}),
    ("POST", "/api/v1/service-accounts"): EVERYONE,  # owned by oneself, or by acme below
    ("GET", "/api/v1/orgs"): EVERYONE,
    ("POST", "/api/v1/orgs"): EVERYONE,
    ("GET", "/api/v1/orgs/{org}/members"): ORG,
    ("PUT", "/api/v1/orgs/{org}/members/{member}"): MANAGERS,
    ("DELETE", "/api/v1/orgs/{org}/members/{member}"): MANAGERS,
    # audit:read is privileged: a key holds it explicitly only when an admin handed it out
    # (see test_access.py), so holding it is what authorizes.
    ("GET", "/api/v1/audit"): EVERYONE,
    ("GET", "/api/v1/audit/export"): EVERYONE,
    ("GET", "/api/v1/audit/verify"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,  # metrics:read, privileged as audit:read is
    # Usage: everyone reads their own (filtered); quotas are set and removed by admins (the
    # quota the matrix removes does not exist: 404 once authorized).
    ("POST", "/insights"): frozenset(),  # only model code reports, on its worker's channel
    ("GET", _MODEL + "/reports"): ORG,
    # Payload sampling: only the model's managers set its rule and read its samples (the
    # sample the matrix reads does not exist: 404 once authorized).
    ("GET", _MODEL + "/sampling"): MANAGERS,
    ("PUT", _MODEL + "/sampling"): MANAGERS,
    ("DELETE", _MODEL + "/sampling"): MANAGERS,
    ("GET", _MODEL + "/samples"): MANAGERS,
    ("GET", _MODEL + "/samples/{request_id}"): MANAGERS,
    ("GET", "/api/v1/usage"): EVERYONE,
    ("GET", "/api/v1/quotas"): EVERYONE,
    ("PUT", "/api/v1/quotas/{kind}/{subject}"): frozenset({"admin"}),
    ("DELETE", "/api/v1/quotas/{quota_id}"): frozenset({"admin"}),
    # Hosted data, on acme's private collection acme/shared.
    ("HEAD", _DATA): ORG,
    ("GET", _DATA): ORG,
    ("PUT", _DATA): PUBLISHERS,  # a folder: 409 once authorized
    ("POST", _DATA): PUBLISHERS,  # a folder inside it
    ("PATCH", _DATA): MANAGERS,
    ("DELETE", _DATA): MANAGERS,  # not empty without force: 400 once authorized
    # acme/hello's own collection (its perm/ folder), from outside: those who manage the model.
    ("HEAD", _ALGO_DATA): MANAGERS,
    ("GET", _ALGO_DATA): MANAGERS,
    ("PUT", _ALGO_DATA): MANAGERS,  # the folder itself: 400 once authorized
    ("POST", _ALGO_DATA): MANAGERS,  # a folder inside it
    ("PATCH", _ALGO_DATA): MANAGERS,  # no ACL: 400 once authorized
    ("DELETE", _ALGO_DATA): MANAGERS,  # the folder itself: 400 once authorized
    # A call tree's scratch space: only model code serving a call reaches it, never a key.
    ("HEAD", _SESSION_DATA): frozenset(),
    ("GET", _SESSION_DATA): frozenset(),
    ("PUT", _SESSION_DATA): frozenset(),
    ("POST", _SESSION_DATA): frozenset(),
    ("PATCH", _SESSION_DATA): frozenset(),
    ("DELETE", _SESSION_DATA): frozenset(),
    # A data connector's bucket acme (folder shared/): acme reads, its non-viewers write.
    ("HEAD", _CONNECTOR): ORG,
    ("GET", _CONNECTOR): ORG,
    ("PUT", _CONNECTOR): PUBLISHERS,  # a folder: 409 once authorized
    ("POST", _CONNECTOR): PUBLISHERS,  # a folder inside it
    ("DELETE", _CONNECTOR): PUBLISHERS,  # not empty without force: 400 once authorized
}

_names = itertools.count(1)


def _body(method: str, template: str) -> tuple[bytes, str]:
    """A valid request body, so that a refusal is authorization's and not validation's."""
    unique = f"m{next(_names)}"
    bodies: dict[tuple[str, str], str] = {
        ("POST", "/v1/algo/{owner}/{name}"): '"x"',
        ("POST", "/v1/algo/{owner}/{name}/{spec}"): '"x"',
        ("PATCH", _MODEL): '{"description": "matrix"}',
        ("PATCH", _VERSION): '{"deprecated": false}',
        ("PUT", _MODEL + "/grants/{principal}"): '{"right": "call"}',
        ("PUT", _MODEL + "/aliases/{alias}"): '{"version": "1.0.0"}',
        ("POST", _MODEL + "/promotions"): '{"alias": "production", "version": "1.0.0"}',
        ("POST", _MODEL + "/promotions/{promotion_id}/approve"): "{}",
        ("POST", _MODEL + "/promotions/{promotion_id}/reject"): "{}",
        ("POST", "/api/v1/keys"): '{"name": "matrix"}',
        ("POST", "/api/v1/feedback"): '{"request_id": "req-matrix", "label": "x"}',
        ("PATCH", "/api/v1/keys/{key_id}"): "{}",
        ("PUT", "/api/v1/keys/{key_id}/model-limits"): "[]",
        ("POST", "/api/v1/principals"): f'{{"name": "{unique}"}}',
        ("PATCH", "/api/v1/principals/{name}"): "{}",
        ("POST", "/api/v1/service-accounts"): f'{{"name": "{unique}"}}',
        ("POST", "/api/v1/orgs"): f'{{"name": "{unique}"}}',
        ("PUT", "/api/v1/orgs/{org}/members/{member}"): '{"role": "viewer"}',
        ("POST", _DATA): f'{{"name": "{unique}"}}',
        ("PATCH", _DATA): '{"acl": {"read": []}}',
        ("POST", _ALGO_DATA): f'{{"name": "{unique}"}}',
        ("POST", _SESSION_DATA): f'{{"name": "{unique}"}}',
        ("POST", _CONNECTOR): f'{{"name": "{unique}"}}',
        ("POST", "/v1/algorithms/{owner}"): f'{{"name": "{unique}", "details": {{}}}}',
        ("POST", "/v1/algorithms/{owner}/{name}/versions"): '{"version_info": {}}',
        ("PUT", "/v1/algorithms/{owner}/{name}"): '{"details": {"summary": "matrix"}}',
        ("POST", "/v1/algorithms/{algorithm_id}/secrets"): (
            '{"short_name": "m", "secret_key": "MATRIX", "secret_value": "v"}'
        ),
        ("POST", "/v1/users"): f'{{"username": "{unique}"}}',
        ("POST", "/v1/organizations"): f'{{"org_name": "{unique}", "type_id": "basic"}}',
        ("PUT", "/v1/organizations/{org}"): '{"org_label": "matrix"}',
        ("POST", "/insights"): '{"matrix": 1}',
        ("PUT", _MODEL + "/sampling"): '{"rate": 0.5, "redact": ["ssn"]}',
        ("PUT", "/api/v1/quotas/{kind}/{subject}"): (
            '{"metric": "calls", "period": "day", "limit": 1000000}'
        ),
        ("POST", _MODEL + "/alerts"): (
            '{"signal": "error_rate", "comparison": "above", "threshold": 0.5, "window": "5m", '
            '"webhook": "https://hooks.example.com/matrix"}'
        ),
    }
    if (method, template) == ("POST", _MODEL + "/versions"):
        return b"not an archive", "application/octet-stream"
    return bodies.get((method, template), "").encode(), "application/json"


@dataclass
class Matrix:
    http: TestClient
    admin_key: str
    target_key_id: str
    keys: dict[tuple[str, str], str]  # (role, state or scope set) -> secret
    principals: dict[str, int]
    algorithm_id: int = 0
    """acme/hello's id in Algorithmia's routes."""

    def key(self, role: str, state: str, permission: str) -> str | None:
        if state == "none":
            return None
        if state == "malformed":
            return "sim%%% not a key"
        if state in ("revoked", "expired"):
            return self.keys[(role, state)]
        scopes = _scopes_for(state, permission)
        label = f"{state}:{permission}"
        if (role, label) not in self.keys:
            with self.http.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
                principal = session.get(Principal, self.principals[role])
                assert principal is not None
                self.keys[(role, label)] = create_key(
                    session, principal, label, scopes=scopes
                ).secret
                session.commit()
        return self.keys[(role, label)]

    def path(self, template: str) -> str:
        values = {
            "owner": "acme",
            "name": "spare" if template.startswith("/api/v1/principals/") else "hello",
            "version": "1.0.0",
            "spec": "1.0.0",
            "key_id": self.target_key_id,
            "principal": "spare",
            "org": "acme",
            "member": "spare",
            "path": "acme/shared",
            "rest": "/acme/hello/perm",
            "connector": "s3",
            "build_id": "00000000-0000-0000-0000-000000000000",
            "algorithm_id": self.algorithm_id,
            "alias": "staging",
            "promotion_id": "999999",
            "kind": "org",
            "subject": "acme",
            "quota_id": "999999",
            "request_id": "req-matrix-unsampled",
            "rule_id": "999999",
        }
        return template.format(**values)


def _scopes_for(state: str, permission: str) -> list[str]:
    needed = "call:acme/*" if permission == "call" else permission
    if permission in (PUBLIC, AUTHENTICATED):
        return []  # needs no scope: a key with none at all
    if state == "right-scope":
        return [needed]
    others = [s for s in SCOPES if s != permission]
    return [*others, "call:other/*"] if permission == "call" else others


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    data_dir = tmp_path_factory.mktemp("matrix") / "data"
    s3 = S3Server(data_dir.parent)
    settings = Settings(
        data_dir=data_dir,
        default_call_timeout=20,
        allowed_hosts=["localhost", "127.0.0.1", "::1", "testserver"],
        data_connectors={"acme": s3.connector(["acme"], readers=["acme"], writers=["acme"])},
    )
    with s3, TestClient(create_app(settings), raise_server_exceptions=False) as http:
        s3.client().create_bucket(Bucket="acme")
        s3.client().put_object(Bucket="acme", Key="shared/keep", Body=b"k")
        admin_key = (data_dir / "admin.key").read_text().strip()
        auth = {"Authorization": f"Simple {admin_key}"}

        def ok(response: Any) -> Any:
            assert response.status_code < 300, response.text
            return response.json() if response.content else None

        for user in ("org-owner", "org-admin", "org-member", "org-viewer", "outsider", "spare"):
            ok(http.post("/api/v1/principals", json={"name": user}, headers=auth))
        ok(http.post("/api/v1/orgs", json={"name": "acme"}, headers=auth))
        for role in ("owner", "admin", "member", "viewer"):
            member = f"org-{role}"
            body = {"role": role}
            ok(http.put(f"/api/v1/orgs/acme/members/{member}", json=body, headers=auth))
        model = write_model(
            tmp_path_factory.mktemp("matrix-models") / "hello",
            "hello",
            HELLO_MODEL,
            extra_manifest="\n[monitoring]\nfeedback = true\n",
        )
        Client("http://testserver", admin_key, http=http).publish(model, owner="acme")
        call = {**auth, "X-Request-Id": "req-matrix"}  # recorded: the feedback's call
        ok(http.post("/v1/algo/acme/hello", json="x", headers=call))
        assert ok(http.get("/api/v1/models/acme/hello", headers=auth))["visibility"] == "private"
        ok(http.post("/v1/data/acme", json={"name": "shared", "acl": {"read": []}}, headers=auth))
        platform = http.app.state.platform  # type: ignore[attr-defined]
        keys: dict[tuple[str, str], str] = {}
        principals: dict[str, int] = {}
        with platform.sessions() as session:
            for role in ROLES:
                name = "admin" if role == "admin" else role
                principal = session.query(Principal).filter_by(name=name).one()
                principals[role] = principal.id
                keys[(role, "revoked")] = create_key(session, principal, "revoked").secret
                keys[(role, "expired")] = create_key(
                    session, principal, "expired", expires_at=utcnow() - timedelta(seconds=1)
                ).secret
            target = create_key(
                session, session.get(Principal, principals[TARGET_KEY_OWNER]), "target"
            )
            session.flush()
            for key in session.query(ApiKey).filter_by(name="revoked"):
                key.revoked_at = utcnow()
            session.commit()
        algorithm_id = int(ok(http.get("/v1/algorithms/acme/hello", headers=auth))["id"])
        yield Matrix(http, admin_key, target.key_id, keys, principals, algorithm_id)


def operations(document: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(method, path, permission) of every operation, and the problems that fail the matrix:
    operations without a declared permission, and operations the oracle does not know."""
    problems = [f"{op}: no declared permission" for op in undeclared(document)]
    found = []
    for path, items in document["paths"].items():
        for method, operation in items.items():
            permission = operation.get(PERMISSION_KEY)
            if not permission:
                continue
            if (method.upper(), path) not in ORACLE:
                problems.append(f"{method.upper()} {path}: not in the matrix's oracle")
                continue
            found.append((method.upper(), path, str(permission)))
    return found, problems


def test_the_authorization_matrix_has_no_unauthorized_success(matrix: Matrix) -> None:
    admin = {"Authorization": f"Simple {matrix.admin_key}"}
    document = matrix.http.get("/api/v1/openapi.json", headers=admin).json()
    found, problems = operations(document)
    assert not problems, problems
    assert len(found) == len(ORACLE), "the oracle names operations the API no longer has"
    unauthorized: list[str] = []
    wrong: list[str] = []
    requests = 0
    for method, template, permission in found:
        for state in STATES:
            roles = ("anyone",) if state in ("none", "malformed") else ROLES
            for role in roles:
                secret = matrix.key(role, state, permission)
                body, content_type = _body(method, template)
                headers = {"Content-Type": content_type}
                if secret is not None:
                    headers["Authorization"] = f"Simple {secret}"
                response = matrix.http.request(
                    method, matrix.path(template), content=body, headers=headers
                )
                requests += 1
                status = response.status_code
                credentialed = state in ("wrong-scope", "right-scope")
                scoped = state == "right-scope" or permission in (PUBLIC, AUTHENTICATED)
                allowed = permission == PUBLIC or (
                    credentialed and scoped and role in ORACLE[(method, template)]
                )
                where = f"{method} {template} [{state}, {role}] -> {status}"
                if 200 <= status < 300 and not allowed:
                    unauthorized.append(f"{where}: {response.text[:200]}")
                if allowed:
                    ok = status not in (401, 403) and status < 500
                elif not credentialed:
                    ok = status == 401
                elif not scoped:
                    ok = status == 403
                else:
                    ok = status in (403, 404)
                if not ok:
                    wrong.append(f"{where}: {response.text[:200]}")
    assert requests > 500
    assert unauthorized == [], f"{len(unauthorized)} unauthorized successes:\n" + "\n".join(
        unauthorized
    )
    assert wrong == [], "\n".join(wrong)


def test_a_route_without_a_declared_permission_fails_the_matrix(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))

    @app.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    _found, problems = operations(app.openapi())
    assert problems == ["GET /api/v1/forgotten: no declared permission"]
