"""The OpenAPI document tells the truth about a running server (schemathesis).

A real ``algora serve`` with one published model; schemathesis reads the document from
``/api/v1/openapi.json`` (behind the admin key, like every route), generates requests from it
for every operation, and checks each answer against it: never a 5xx, a status the operation
documents, a body that matches its schema, a documented media type, the headers it
promises, a 405's ``Allow``, and no request the document calls valid refused as invalid (400,
405, 415: the document states the services' rules on names, versions, aliases, anchors...).
Then the same again as sequences of calls that follow the links schemathesis infers from the
document, where also what was deleted is gone, what was created is there, and the invalid
requests mixed in are refused. (Schemathesis's remaining default checks run too but find
nothing to check here: there is no coverage phase, and the document declares no security
scheme.)
The number of examples is bounded so the whole module takes a few minutes on a small machine.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import Case
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from schemathesis.schemas import BaseSchema as OpenApiSchema

from algora.audit.anchors import parse_anchor
from algora.auth.accounts import check_name
from algora.gateway.openapi import (
    OPERATION_RULES,
    PATH_RULES,
    QUERY_RULES,
    REQUEST_BODIES,
    SECRET_KEY_RULE,
)
from algora.registry.secrets import check_env_name
from algora.registry.specs import is_alias_name, parse_semver, parse_spec
from algora.store.collections import check_collection, check_segment
from algora.store.connectors import check_key_segment
from algora.testing import RunningServer, write_model

from ..conftest import in_process

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25
STATEFUL_STEPS = 40
CHECKS = [  # among the checks schemathesis enables by default: all of them run
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    allow_header_conformance,
    ignored_auth,  # an operation the document says needs a key answers 401 without one
    positive_data_acceptance,
    use_after_free,  # in the linked sequences: what was deleted is gone
    ensure_resource_availability,  # and what was created is there
]
_ORG_MEMBER = (
    "a member that names an organization is refused (auth.accounts, 400): whether a name is a "
    "user's or an organization's is state, which no schema can say"
)
_NOT_EMPTY = (
    "a folder that holds files is deleted only with force=true (400): whether it holds any is "
    "state, which no schema can say"
)
_MARKER = (
    "a listing's marker is taken only as the server gave it out (400 otherwise): its "
    "provenance is no shape a schema can say"
)
_NO_ACL = "always refused (400) once the caller may write there: the space has no ACL to set"
_WINDOW = (
    "since comes before until, and the window holds at most so many steps: relations between "
    "query parameters, which OpenAPI cannot say"
)
REFUSES_VALID = {
    # Operations that refuse some requests the document allows, because the rule is one no
    # schema can state; the rest of the checks still run on them.
    "POST /v1/algorithms/{algorithm_id}/secrets": (
        "owner_id, when given, is the path's algorithm_id: JSON Schema cannot tie a body field "
        "to a path parameter (and a model holds at most MAX_SECRETS secrets: state, not shape)"
    ),
    "POST /api/v1/models/{owner}/{name}/versions": (
        "the body is a model folder's tar.gz or zip archive, which no schema describes; and bump "
        "and version exclude each other, which OpenAPI cannot say of two query parameters"
    ),
    # the run creates organizations (POST /v1/organizations), then may name one as a member:
    "PUT /api/v1/orgs/{org}/members/{member}": _ORG_MEMBER,
    "PUT /v1/organizations/{org}/members/{member}": _ORG_MEMBER,
    "GET /v1/data/{path}": _MARKER,
    "GET /v1/data/.algo{rest}": _MARKER,
    "GET /v1/data/.session{rest}": _MARKER,
    "GET /v1/connector/{connector}/{path}": _MARKER,
    "DELETE /v1/data/{path}": _NOT_EMPTY,
    "DELETE /v1/connector/{connector}/{path}": _NOT_EMPTY,
    "DELETE /v1/data/.algo{rest}": _NOT_EMPTY,
    "DELETE /v1/data/.session{rest}": _NOT_EMPTY,
    "PATCH /v1/data/.algo{rest}": _NO_ACL,
    "PATCH /v1/data/.session{rest}": _NO_ACL,
    "GET /api/v1/models/{owner}/{name}/stats": _WINDOW,
    "GET /api/v1/models/{owner}/{name}/reports": _WINDOW,
    "GET /api/v1/models/{owner}/{name}/samples": (
        "version is MAJOR.MINOR.PATCH, and since and until are times or durations the service "
        "parses itself, to say what is wrong with one"
    ),
    "GET /api/v1/models/{owner}/{name}/aliases/{alias}/compare": _WINDOW,
    "GET /api/v1/models/{owner}/{name}/drift": _WINDOW,
    "POST /api/v1/models/{owner}/{name}/alerts": (
        "the signal is one the server registers, the webhook an http(s) "
        "URL on an allowed host, the window 1m to 24h, and version and alias exclude each "
        "other: rules of the registry and the settings, not of the body's shape"
    ),
    "PUT /api/v1/keys/{key_id}/model-limits": (
        "each model at most once in the list (auth.keyring): uniqueness by one field, which "
        "JSON Schema cannot say (uniqueItems compares whole items)"
    ),
}
# DELETE revokes a key, which stays readable (marked revoked, with its limits): what follows
# it there is no use after free
REVOKED_NOT_REMOVED = "/api/v1/keys/{key_id}"
IMPLICIT = {"HEAD", "OPTIONS", ""}  # as schemathesis's allowed-methods check
BOUNDED = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("contract")
    with RunningServer(root / "data") as running:
        folder = write_model(
            root / "models" / "hello",
            "hello",
            textwrap.dedent(
                """
                from typing import Any


                def apply(input: Any) -> Any:
                    return {"echo": input}
                """
            ),
            example='input = "ping"',
        )
        with running.client() as client:
            client.publish(Path(folder))
        yield running


@pytest.fixture(scope="module")
def auth(contract_server: RunningServer) -> dict[str, str]:
    return {"Authorization": f"Simple {contract_server.key}"}


@pytest.fixture(scope="module")
def api_schema(contract_server: RunningServer, auth: dict[str, str]) -> OpenApiSchema:
    url = contract_server.url
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", headers=auth)
    schema.config.update(base_url=url, headers=auth)
    return schema


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _excluded(operation: Any) -> list[Any]:
    excluded = [positive_data_acceptance] if _label(operation) in REFUSES_VALID else []
    if operation.path.startswith(REVOKED_NOT_REMOVED):
        excluded.append(use_after_free)
    return excluded


def test_the_checks_are_on(api_schema: OpenApiSchema) -> None:
    # the tests below run schemathesis's default checks (less the one REFUSES_VALID excludes)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for phase in ("examples", "fuzzing", "stateful"):
            config = api_schema.config.checks_config_for(operation=operation, phase=phase)
            off = [c.__name__ for c in CHECKS if not config.get_by_name(name=c.__name__).enabled]
            assert not off, f"{_label(operation)} ({phase}): {off}"


def test_every_operation_answers_as_documented(api_schema: OpenApiSchema) -> None:
    # schemathesis's pytest plugin (from_fixture) does not run on pytest 9: each operation is
    # a hypothesis test here, and every disagreement is collected before the test fails.
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        label = _label(operation)

        @given(case=operation.as_strategy())
        @BOUNDED
        def check(case: Case) -> None:
            case.call_and_validate(excluded_checks=_excluded(case.operation), timeout=30)

        try:
            check()
        except (
            Exception,
            BaseExceptionGroup,
        ) as error:  # each operation's failure, reported together below
            failures.append(f"{label}: {error}")
    assert not failures, "\n\n".join(failures)


def test_linked_sequences_answer_as_documented(
    api_schema: OpenApiSchema, auth: dict[str, str]
) -> None:
    machine: Any = api_schema.as_state_machine()

    class Authenticated(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": auth, "timeout": 30}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            # every check schemathesis enables, the stateful ones too (they read the recorder)
            case.validate_response(
                response,
                excluded_checks=_excluded(case.operation),
                headers=auth,
                transport_kwargs={"headers": auth, "timeout": 30},
                recorder=self.recorder,
            )

    Authenticated.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )


@pytest.mark.parametrize("limits", [{"rate_per_second": True}, {"burst": True}])
def test_a_boolean_is_no_rate(tmp_path: Path, limits: dict[str, Any]) -> None:
    # its own gateway: the fuzzing above may have limited or revoked the contract server's keys
    with in_process(tmp_path / "data") as gw:
        key_id = gw.http.get("/api/v1/whoami", headers=gw.auth).json()["key_id"]
        response = gw.http.patch(f"/api/v1/keys/{key_id}", json=limits, headers=gw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_whole_number_written_with_a_point_is_a_burst(tmp_path: Path) -> None:
    # JSON Schema calls 65536.0 an integer, so the server takes it as one; 1.5 is not.
    with in_process(tmp_path / "data") as gw:
        key_id = gw.http.get("/api/v1/whoami", headers=gw.auth).json()["key_id"]
        whole = gw.http.patch(f"/api/v1/keys/{key_id}", json={"burst": 8.0}, headers=gw.auth)
        half = gw.http.patch(f"/api/v1/keys/{key_id}", json={"burst": 1.5}, headers=gw.auth)
    assert whole.status_code == 200, whole.text
    assert whole.json()["burst"] == 8
    assert half.status_code == 400, half.text


def _url(template: str, operations: dict[str, Any]) -> str:
    """A concrete URL for a document path: integers where the document wants them."""
    url = template
    for operation in operations.values():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                schema = parameter.get("schema", {})
                value = "1" if schema.get("type") == "integer" else "a"
                url = url.replace("{" + parameter["name"] + "}", value)
    return url


def _template(path: str) -> re.Pattern[str]:
    # {path} and {rest} take slashes (Starlette's :path), every other parameter one segment
    pattern = re.sub(
        r"\{(path|rest)\}", ".+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
    )
    return re.compile(re.sub(r"\{[a-z_]+\}", "[^/]+", pattern) + r"\Z")


def test_a_method_a_path_lacks_is_405_with_its_methods(tmp_path: Path) -> None:
    # Allow lists what the document lists for the URL (every path of it that the URL matches);
    # its own gateway: the fuzzing above may have revoked the contract server's keys
    with in_process(tmp_path / "data") as gw:
        document = gw.http.get("/api/v1/openapi.json", headers=gw.auth).json()
        paths = {path: _template(path) for path in document["paths"]}
        wrong = []
        for path, operations in document["paths"].items():
            url = _url(path, operations)
            documented = {
                method.upper()
                for other, regex in paths.items()
                if regex.match(url)
                for method in document["paths"][other]
            } - IMPLICIT
            for method in ("OPTIONS", *sorted({"PUT", "PATCH", "DELETE"} - documented)[:1]):
                response = gw.http.request(method, url, headers=gw.auth)
                allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
                if response.status_code != 405 or allowed - IMPLICIT != documented:
                    wrong.append(f"{method} {url}: {response.status_code} Allow {allowed}")
    assert not wrong, "\n".join(wrong)


def _documented(rule: dict[str, Any]) -> st.SearchStrategy[str]:
    """Strings the document's ``rule`` calls valid (drawn from its patterns, then checked)."""
    options = rule.get("anyOf", [rule])
    patterns = [o["pattern"] for o in options if "pattern" in o]
    patterns += [p["pattern"] for o in options for p in o.get("anyOf", []) if "pattern" in p]
    drawn = st.one_of(
        *(st.from_regex(pattern, fullmatch=True) for pattern in patterns),
        *(st.sampled_from(o["enum"]) for o in options if "enum" in o),
    )
    return drawn.filter(Draft202012Validator({"type": "string", **rule}).is_valid)


def _data_path_accepted(path: str) -> None:
    owner, _, rest = path.partition("/")
    check_name(owner, "user")
    if rest:
        collection, *segments = rest.split("/")
        check_collection(collection)
        for segment in segments:
            check_segment(segment)


def _spec_accepted(text: str) -> None:
    parse_spec(text)


def _alias_accepted(text: str) -> None:
    assert is_alias_name(text), text


def _created_name_accepted(name: str) -> None:
    # the body cannot see whether the path names an owner (a collection is created) or a
    # collection (a folder is): the document states what both accept
    check_collection(name)
    check_segment(name)


def _body_rule(method: str, path: str, field: str) -> dict[str, Any]:
    body = REQUEST_BODIES[method, path]["content"]["application/json"]["schema"]
    rule: dict[str, Any] = body["properties"][field]
    return rule


DOCUMENTED_AND_ACCEPTED = {
    "name": (PATH_RULES["name"], lambda v: check_name(v, "user")),
    "version": (PATH_RULES["version"], parse_semver),
    "alias": (PATH_RULES["alias"], _alias_accepted),
    "spec": (PATH_RULES["spec"], _spec_accepted),
    "anchor": (QUERY_RULES["anchor"], parse_anchor),
    "data path": (OPERATION_RULES["get", "/v1/data/{path}", "path"], _data_path_accepted),
    "created name": (_body_rule("post", "/v1/data/{path}", "name"), _created_name_accepted),
    "connector folder": (
        _body_rule("post", "/v1/connector/{connector}/{path}", "name"),
        check_key_segment,
    ),
    "secret name": (SECRET_KEY_RULE, check_env_name),
}


@pytest.mark.parametrize("what", DOCUMENTED_AND_ACCEPTED)
def test_what_the_document_calls_valid_the_services_accept(what: str) -> None:
    # the document's rules are read from the services' patterns; this keeps them in step
    rule, accept = DOCUMENTED_AND_ACCEPTED[what]

    @given(value=_documented(rule))
    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    def accepted(value: str) -> None:
        accept(value)

    accepted()


def _integer_bounds(schema: Any) -> Iterator[Any]:
    if isinstance(schema, list):
        for item in schema:
            yield from _integer_bounds(item)
    elif isinstance(schema, dict):
        if schema.get("type") == "integer":
            yield from (schema[b] for b in ("minimum", "maximum") if b in schema)
        for value in schema.values():
            yield from _integer_bounds(value)


def test_an_integer_bound_is_exact(tmp_path: Path) -> None:
    # Found by a randomized run: FastAPI wrote a burst's bound 2**63 - 1 as a float, 2**63
    with in_process(tmp_path / "data") as gw:
        document = gw.http.get("/api/v1/openapi.json", headers=gw.auth).json()
    bounds = list(_integer_bounds(document))
    assert 2**63 - 1 in bounds
    assert all(type(b) is int and abs(b) < 2**63 for b in bounds), bounds


def test_a_burst_past_64_bits_is_a_400_not_a_500(tmp_path: Path) -> None:
    # Found by the stateful run: the database column is a 64-bit integer.
    with in_process(tmp_path / "data") as gw:
        key_id = gw.http.get("/api/v1/whoami", headers=gw.auth).json()["key_id"]
        limits = [{"model": "admin/*", "rate_per_second": 1.0, "burst": 2**70}]
        response = gw.http.put(f"/api/v1/keys/{key_id}/model-limits", json=limits, headers=gw.auth)
        too_big = gw.http.patch(f"/api/v1/keys/{key_id}", json={"burst": 2**63}, headers=gw.auth)
    assert response.status_code == 400, response.text
    assert too_big.status_code == 400, too_big.text
