"""Model source repositories: one bare git repository per model, seeded from a template.

A model created through Algorithmia's ``create`` call gets a repository at
``DATA_DIR/git/OWNER/NAME.git`` (owner-only, 0700), served over git's smart HTTP by
:mod:`algora.protocols.algorithmia.git_http`, with a first commit from the template of its
runtime: for
Python 3, Algorithmia's own layout and nothing else (``algorithmia.conf``, ``src/NAME.py`` with
``def apply(input)``, a test, ``requirements.txt``): a build reads it as it reads any
Algorithmia algorithm's repository (:mod:`algora.modelfolder.algorithmia`), so pushing an
algorithm's repository from Algorithmia in its place builds too. Pushes to the default branch
start builds (see :mod:`algora.publishing.builds`).

Git runs only as a subprocess (never through a shell), with no system or global configuration,
a private ``HOME`` and umask 077, so nothing the server's user configured elsewhere applies and
nothing it writes is readable by other local users.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import Action
from algora.auth.principals import Caller
from algora.db.tables import Model, ModelSource
from algora.errors import AlgoraError, BadRequest, Conflict, ModelNotFound, NotFound, Unavailable
from algora.modelfolder.algorithmia import (
    CONF_NAME,
    algorithmia_conf,
    python_module,
    python_version,
)
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.manifest import NAME_PATTERN
from algora.registry.service import Registry
from algora.registry.views import ModelView, model_view

__all__ = ["DEFAULT_BRANCH", "Sources", "Template", "python3_template", "runtime_of"]

DEFAULT_BRANCH = "master"
"""Algorithmia's default branch; a push to it builds the model."""

_GIT_TIMEOUT = 120.0
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")


@dataclass(frozen=True)
class Template:
    """The files of a new repository's first commit."""

    runtime: str
    files: Mapping[str, str]


def runtime_of(settings: Mapping[str, Any]) -> str:
    """The runtime an Algorithmia ``settings`` object asks for: ``python3`` (the only one).

    Algorithmia named it ``python3-1`` (or ``python3``); an ``algorithm_environment`` id alone
    names one of its Python environments, which Algora cannot look up, so it means Python 3.
    """
    language = settings.get("language")
    try:
        python_version(language)  # Python 3 in any of Algorithmia's spellings
    except AlgoraError:
        raise BadRequest(
            f"settings.language '{language}' is not supported: Algora runs Python 3 models "
            "(use 'python3')"
        ) from None
    return "python3"


def python3_template(
    name: str, *, summary: str = "", network: bool = False, owner: str = ""
) -> Template:
    """Algorithmia's Python 3 layout for ``name``: its ``algorithmia.conf`` (with the
    ``network_access`` setting and a ``sample_input`` that every build calls once), the
    algorithm in ``src/``, a test, ``requirements.txt`` and a README."""
    module = python_module(name)
    settings = {"network_access": "full" if network else "isolated", "sample_input": "world"}
    files = {
        CONF_NAME: algorithmia_conf(name, username=owner, settings=settings),
        "requirements.txt": (
            "# The algorithm's dependencies, one per line as pip reads them.\n"
            "# Algora locks them with uv at every build (pin versions for repeatable builds).\n"
        ),
        "src/__init__.py": "",
        f"src/{module}.py": (
            "# API calls begin at the apply() method, with the request body passed as 'input'.\n"
            "# Push to the master branch to build; publish a built commit as a version.\n"
            "def apply(input):\n"
            '    return "hello {}".format(input)\n'
        ),
        f"src/{module}_test.py": (
            f"from . import {module}\n\n\n"
            f"def test_{module}():\n"
            f'    assert {module}.apply("Jane") == "hello Jane"\n'
        ),
        "README.md": (
            f"# {name}\n\n{summary + chr(10) + chr(10) if summary else ''}"
            f"`src/{module}.py` is the algorithm: `apply(input)` answers each call.\n"
            "Push to `master` to build it (every build calls it once with the `sample_input` of\n"
            "`algorithmia.conf`); publish a succeeded build as a version.\n"
        ),
    }
    return Template("python3", files)


class Sources:
    """The repositories under ``root`` and their rows; every method checks the caller."""

    def __init__(self, root: Path, sessions: sessionmaker[Session], registry: Registry) -> None:
        self.root = root
        self._sessions = sessions
        self._registry = registry
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        self._home = root / ".home"  # git's HOME: empty and private
        self._home.mkdir(exist_ok=True, mode=0o700)
        self.git = shutil.which("git")

    # paths ----------------------------------------------------------------------------------
    def path(self, owner: str, name: str) -> Path:
        """The repository folder of ``owner/name``; NotFound for names no model could have."""
        if not (NAME_PATTERN.match(owner) and NAME_PATTERN.match(name)):
            raise NotFound(f"no repository '{owner}/{name}'")
        path = (self.root / owner / f"{name}.git").resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise NotFound(f"no repository '{owner}/{name}'")
        return path

    def environment(self) -> dict[str, str]:
        """The environment every git subprocess runs with: nothing inherited but ``PATH``."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }

    def require_git(self) -> str:
        if self.git is None:
            raise Unavailable(
                "git is not installed on the server: an administrator must install it "
                "(for example 'apt-get install git') to serve model repositories"
            )
        return self.git

    def _run(
        self, args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> str:
        """Run git; its stdout, or an error that says what failed (never a shell)."""
        git = self.require_git()
        try:
            done = subprocess.run(
                [git, *args],
                cwd=cwd,
                env={**self.environment(), **(env or {})},
                capture_output=True,
                timeout=_GIT_TIMEOUT,
                check=False,
                umask=0o077,
            )
        except subprocess.TimeoutExpired:
            raise AlgoraError(f"git {args[0]} did not finish in {_GIT_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            error = done.stderr.decode("utf-8", errors="replace").strip()[-2000:]
            raise AlgoraError(f"git {args[0]} failed: {error}")
        return done.stdout.decode("utf-8", errors="replace")

    # rows -----------------------------------------------------------------------------------
    def source_of(self, session: Session, model: Model) -> ModelSource:
        """The model's source row; NotFound when the model has no repository."""
        row = session.scalars(select(ModelSource).where(ModelSource.model_id == model.id)).first()
        if row is None or not self.path(model.owner.name, model.name).is_dir():
            raise NotFound(
                f"'{model.owner.name}/{model.name}' has no source repository: models created "
                "with Algorithmia's create call have one (this one was published from a folder)"
            )
        return row

    def find(self, caller: Caller, owner: str, name: str, action: Action) -> tuple[Model, str]:
        """The model and its default branch, once the caller may ``action`` it."""
        with self._sessions() as session:
            model = self._registry.require_model(session, caller, owner, name, action)
            return model, self.source_of(session, model).default_branch

    def branch(self, caller: Caller, owner: str, name: str, action: Action) -> str:
        """The default branch of the model's repository, once the caller may ``action`` it."""
        _model, branch = self.find(caller, owner, name, action)
        return branch

    # create ---------------------------------------------------------------------------------
    def create(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        summary: str,
        template: Template,
    ) -> ModelView:
        """Create ``owner/name`` (the caller must be able to publish it) with its repository,
        seeded with ``template`` in one first commit on the default branch."""
        if not NAME_PATTERN.match(name):
            raise BadRequest(
                f"'{name}' is not a valid algorithm name: use 1-64 lowercase letters, digits, "
                "'-' or '_', starting with a letter or digit"
            )
        self._registry.check_publish(caller, owner, name)  # NotFound owner, PermissionDenied
        with self._sessions() as session:
            try:
                self._registry.find_model(session, owner, name)
            except ModelNotFound:
                pass
            else:
                raise Conflict(f"algorithm '{owner}/{name}' already exists")
        self.require_git()
        owner_dir = self.root / owner
        owner_dir.mkdir(exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(prefix=".new-", dir=owner_dir))
        try:
            bare = staging / "repo.git"
            self._init(bare)
            self._seed(bare, staging / "work", template, caller.name)
            manifest = find_manifest(staging / "work", name=name).manifest
            described = manifest.model.model_copy(update={"description": summary})
            manifest = manifest.model_copy(update={"model": described})
            model_id = self._registry.model_for_publish(caller, owner, name, manifest)
            with self._sessions() as session:
                session.add(
                    ModelSource(
                        model_id=model_id,
                        default_branch=DEFAULT_BRANCH,
                        language=template.runtime,
                        created_by=caller.principal_id,
                    )
                )
                try:
                    session.commit()
                except IntegrityError:
                    raise Conflict(f"algorithm '{owner}/{name}' already exists") from None
            final = self.path(owner, name)
            if final.exists():  # left by a server that stopped half-way through a create
                leftover = owner_dir / f".old-{uuid.uuid4().hex}"
                final.rename(leftover)
                shutil.rmtree(leftover, ignore_errors=True)
            bare.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return model_view(self._registry.get_model(caller, owner, name))

    def _init(self, bare: Path) -> None:
        bare.mkdir(mode=0o700)
        branch = f"--initial-branch={DEFAULT_BRANCH}"
        self._run(["init", "--quiet", "--bare", "--template=", branch], cwd=bare)
        for key, value in (
            ("http.receivepack", "true"),  # pushes are authorized by the gateway, not by git
            ("http.uploadpack", "true"),
            ("receive.fsckObjects", "true"),  # refuse malformed objects
            ("core.sharedRepository", "0600"),
            ("gc.auto", "0"),  # no background gc while a build reads the repository
        ):
            self._run(["config", key, value], cwd=bare)

    def _seed(self, bare: Path, work: Path, template: Template, author: str) -> None:
        work.mkdir(mode=0o700)
        for relative, text in template.files.items():
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.write_text(text, encoding="utf-8")
        env = {
            "GIT_DIR": str(bare),
            "GIT_WORK_TREE": str(work),
            "GIT_INDEX_FILE": str(work.parent / "index"),
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author}@algora.invalid",
            "GIT_COMMITTER_NAME": "Algora",
            "GIT_COMMITTER_EMAIL": "algora@algora.invalid",
        }
        self._run(["add", "--all"], cwd=work, env=env)
        message = f"Initial commit from the {template.runtime} template"
        self._run(["commit", "--quiet", "-m", message], cwd=work, env=env)

    # reading --------------------------------------------------------------------------------
    def head(self, owner: str, name: str, branch: str) -> str | None:
        """The commit ``branch`` points at, or None when the branch does not exist."""
        path = self.path(owner, name)
        try:
            out = self._run(
                ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"], cwd=path
            )
        except AlgoraError:
            return None
        sha = out.strip()
        return sha if _SHA.match(sha) else None

    def archive(self, owner: str, name: str, commit: str, destination: Path) -> None:
        """Write the tree of ``commit`` as a tar.gz archive to ``destination``."""
        if not _SHA.match(commit):
            raise BadRequest(f"'{commit}' is not a commit id")
        self._run(
            ["archive", "--format=tar.gz", f"--output={destination}", commit],
            cwd=self.path(owner, name),
        )

    def describe(self, owner: str, name: str, commit: str) -> str:
        """The commit's one-line summary (author and subject) for build logs."""
        if not _SHA.match(commit):
            return ""
        try:
            out = self._run(["log", "-1", "--format=%an: %s", commit], cwd=self.path(owner, name))
        except AlgoraError:
            return ""
        return out.strip()[:500]
