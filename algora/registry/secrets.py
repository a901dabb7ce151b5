"""Model secrets: encrypted at rest, listed without their values, handed only to workers.

A secret belongs to one model and becomes one environment variable of that model's workers
when they start. Nothing else ever sees the value again: no route returns it, no log line or
audit row holds it. Values are sealed with AES-256-GCM under the server's secrets key, with the
model's id and the variable's name as associated data, so a sealed value copied onto another
model or name does not open.

The key is ``ALGORA_SECRETS_KEY`` where several gateways share a registry (all must set the
same one); otherwise a key generated on first use in ``DATA_DIR/secrets.key`` (mode 0600). Each
sealed value records the id of the key that sealed it: a server holding another key refuses
loudly rather than hand a worker garbage, and a key file others may read is refused too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import can
from algora.auth.principals import Caller
from algora.db.tables import Model, ModelSecret, Version, utcnow
from algora.db.views import view_of
from algora.errors import BadRequest, Conflict, ModelNotFound, PermissionDenied, Unavailable
from algora.registry.views import ModelView, model_view
from algora.settings import Settings

__all__ = [
    "ENV_NAME_PATTERN",
    "KEY_FILE",
    "MAX_SECRETS",
    "MAX_VALUE_BYTES",
    "RESERVED_ENV_NAMES",
    "RESERVED_ENV_PREFIXES",
    "ManagedSecrets",
    "ModelSecrets",
    "SecretBox",
    "SecretChange",
    "SecretInfo",
    "check_env_name",
    "parse_key",
]

KEY_FILE = "secrets.key"
MAX_SECRETS = 100
"""Secrets one model may hold (their total stays well below what a process environment takes)."""
MAX_VALUE_BYTES = 32 * 1024
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
"""A secret's environment variable name (unless reserved: any case of the names below)."""
RESERVED_ENV_NAMES = frozenset({"PATH", "HOME", "LANG", "TMPDIR", "PWD", "SHELL", "USER", "IFS"})
RESERVED_ENV_PREFIXES = ("ALGORA_", "ALGORITHMIA_", "LC_", "LD_", "PYTHON", "UV_", "VIRTUAL_ENV")
_FORMAT = b"\x01"
_NONCE_BYTES = 12


def parse_key(text: str) -> bytes:
    """The 32 bytes a URL-safe base64 key names; the message never repeats the key."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != 32:
        raise Unavailable(
            "the secrets key is not the URL-safe base64 of 32 bytes: generate one with "
            "'python -c \"import base64, os; print(base64.urlsafe_b64encode(os.urandom(32))"
            ".decode())\"'"
        )
    return key


def check_env_name(name: str) -> None:
    """Raise BadRequest unless ``name`` may be a secret's environment variable."""
    if not ENV_NAME_PATTERN.match(name):
        raise BadRequest(
            f"'{name[:130]}' is not an environment variable name: use 1-128 letters, digits "
            "and '_', not starting with a digit (for example DATABASE_PASSWORD)"
        )
    upper = name.upper()
    if upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES):
        raise BadRequest(
            f"'{name}' is reserved for the platform and the worker's runtime: choose another "
            f"name (reserved: {', '.join(sorted(RESERVED_ENV_NAMES))} and names starting with "
            f"{', '.join(RESERVED_ENV_PREFIXES)})"
        )


class SecretBox:
    """Seals and opens values with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a secrets key is 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"algora-secrets-key:" + key).hexdigest()[:16]
        """Names the key without revealing it; stored beside every value it seals."""

    def seal(self, value: str, context: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), context)
        return base64.b64encode(_FORMAT + nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: bytes) -> str:
        """The value; Unavailable when this key did not seal it (or it was tampered with)."""
        try:
            raw = base64.b64decode(sealed.encode("ascii"), validate=True)
            if raw[:1] != _FORMAT:
                raise ValueError("unknown format")
            nonce, body = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
            return self._aead.decrypt(nonce, body, context).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error) as error:
            raise Unavailable(
                "a model secret cannot be decrypted with this server's secrets key (it was "
                "sealed with another key, or altered): set ALGORA_SECRETS_KEY to the key that "
                "sealed it, or set the secret again",
                details={"key_id": self.key_id},
            ) from error


def _context(model_id: int, env_name: str) -> bytes:
    return f"algora-model-secret:{model_id}:{env_name}".encode()


def _load_key_file(path: Path, create: bool) -> bytes | None:
    """The key in ``path``, made (0600, atomically: first writer wins) when ``create``."""
    if create and not path.exists():
        encoded = base64.urlsafe_b64encode(secrets.token_bytes(32)) + b"\n"
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded)
                handle.flush()
                os.fsync(handle.fileno())
            # A hard link appears whole or not at all, and never replaces a key another
            # thread or gateway made first (then theirs is used).
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise Unavailable(
            f"the secrets key file {path} may be read by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}): make it private with 'chmod 600 {path}'"
        )
    return parse_key(path.read_text(encoding="ascii"))


@dataclass(frozen=True)
class SecretInfo:
    """What may be said of a secret: everything but its value."""

    id: int
    model_id: int
    env_name: str
    short_name: str
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ModelSecret) -> SecretInfo:
        return view_of(cls, row)


class ModelSecrets:
    """Sets and lists model secrets, and opens them for the workers of their model.

    Callers authorize first (only a model's managers set or list its secrets); this class
    keeps the values sealed and out of everything it returns, except :meth:`environment`.
    """

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._key_path = settings.resolved_data_dir / KEY_FILE
        configured = settings.secrets_key
        # A configured key is checked now, so that a bad one stops the server at startup.
        self._box = SecretBox(parse_key(configured.get_secret_value())) if configured else None
        self._lock = threading.Lock()

    def _secret_box(self, create: bool) -> SecretBox | None:
        with self._lock:
            if self._box is None:
                key = _load_key_file(self._key_path, create)
                self._box = SecretBox(key) if key is not None else None
            return self._box

    def set_secret(
        self,
        model_id: int,
        env_name: str,
        value: str,
        *,
        short_name: str,
        description: str,
        principal_id: int,
    ) -> tuple[SecretInfo, bool]:
        """Create or replace the model's secret ``env_name``; (what it is now, whether new)."""
        check_env_name(env_name)
        if "\x00" in value or len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise BadRequest(
                f"a secret's value is at most {MAX_VALUE_BYTES} bytes of text without NUL "
                "characters"
            )
        box = self._secret_box(create=True)
        if box is None:  # the key file vanished as it was made
            raise Unavailable("the secrets key could not be created; retry")
        sealed = box.seal(value, _context(model_id, env_name))
        with self._sessions() as session:
            row = session.scalars(
                select(ModelSecret).where(
                    ModelSecret.model_id == model_id, ModelSecret.env_name == env_name
                )
            ).first()
            created = row is None
            if row is None:
                held = session.scalars(
                    select(ModelSecret.id).where(ModelSecret.model_id == model_id)
                ).all()
                if len(held) >= MAX_SECRETS:
                    raise BadRequest(f"a model holds at most {MAX_SECRETS} secrets")
                row = ModelSecret(model_id=model_id, env_name=env_name, created_by=principal_id)
                session.add(row)
            row.short_name = short_name
            row.description = description
            row.sealed = sealed
            row.key_id = box.key_id
            row.updated_by = principal_id
            row.updated_at = utcnow()
            try:
                session.commit()
            except IntegrityError:  # the same name, created at the same moment elsewhere
                raise Conflict(
                    f"the secret {env_name} was being set by another request: retry"
                ) from None
            return SecretInfo.of(row), created

    def seal(self, value: str, context: bytes) -> tuple[str, str]:
        """``value`` sealed under the secrets key, bound to ``context``: (sealed, key id).
        What else the platform keeps secret (webhooks' signing secrets) is sealed so too."""
        box = self._secret_box(create=True)
        if box is None:  # the key file vanished as it was made
            raise Unavailable("the secrets key could not be created; retry")
        return box.seal(value, context), box.key_id

    def open(self, sealed: str, key_id: str, context: bytes) -> str:
        """What :meth:`seal` sealed; Unavailable when another key sealed it."""
        box = self._secret_box(create=False)
        if box is None or box.key_id != key_id:
            raise Unavailable(
                f"a value sealed with secrets key {key_id} cannot be opened by this server: "
                "set ALGORA_SECRETS_KEY to the key that sealed it",
                details={"sealed_with": key_id},
            )
        return box.open(sealed, context)

    def list_secrets(self, model_id: int) -> list[SecretInfo]:
        with self._sessions() as session:
            rows = session.scalars(
                select(ModelSecret)
                .where(ModelSecret.model_id == model_id)
                .order_by(ModelSecret.env_name)
            ).all()
            return [SecretInfo.of(row) for row in rows]

    def environment(self, model_id: int) -> dict[str, str]:
        """The model's secrets as environment variables, for its workers only.

        Raises Unavailable when they cannot be opened (no key, or another key sealed them):
        a worker never starts without the secrets its model was given.
        """
        with self._sessions() as session:
            rows = session.scalars(
                select(ModelSecret).where(ModelSecret.model_id == model_id)
            ).all()
            sealed = [(row.env_name, row.sealed, row.key_id) for row in rows]
        if not sealed:
            return {}
        box = self._secret_box(create=False)
        if box is None:
            raise Unavailable(
                f"the model has secrets but this server has no secrets key ({self._key_path} "
                "is missing and ALGORA_SECRETS_KEY is unset): restore the key that sealed them"
            )
        env: dict[str, str] = {}
        for env_name, value, key_id in sealed:
            if key_id != box.key_id:
                raise Unavailable(
                    f"the model's secret {env_name} was sealed with secrets key {key_id}, but "
                    f"this server holds key {box.key_id}: set ALGORA_SECRETS_KEY to the key "
                    "that sealed it (every gateway of a registry needs the same key)",
                    details={"key_id": box.key_id, "sealed_with": key_id},
                )
            env[env_name] = box.open(value, _context(model_id, env_name))
        return env


@dataclass(frozen=True)
class SecretChange:
    """A secret set: what it is now, whether it is new, and the pool keys of its model's
    versions (their workers must restart to see it)."""

    info: SecretInfo
    created: bool
    version_keys: tuple[str, ...]


class ManagedSecrets:
    """Model secrets as their managers see them: every method checks the caller's right.

    Models are named by id here (Algorithmia's clients do); a model the caller may not read
    does not exist for it, and only its managers (``manage`` right) set or list its secrets.
    """

    _MAX_ID = 2**62

    def __init__(self, sessions: sessionmaker[Session], secrets: ModelSecrets) -> None:
        self._sessions = sessions
        self._secrets = secrets

    def model(self, caller: Caller, model_id: int) -> ModelView:
        """The model with this id, once the caller may manage it."""
        with self._sessions() as session:
            return model_view(self._managed(session, caller, model_id))

    def list_secrets(self, caller: Caller, model_id: int) -> list[SecretInfo]:
        with self._sessions() as session:
            self._managed(session, caller, model_id)
        return self._secrets.list_secrets(model_id)

    def set_secret(
        self,
        caller: Caller,
        model_id: int,
        env_name: str,
        value: str,
        *,
        short_name: str,
        description: str,
    ) -> SecretChange:
        """Create or replace the model's secret ``env_name``."""
        with self._sessions() as session:
            self._managed(session, caller, model_id)
        info, created = self._secrets.set_secret(
            model_id,
            env_name,
            value,
            short_name=short_name,
            description=description,
            principal_id=caller.principal_id,
        )
        with self._sessions() as session:
            ids = session.scalars(select(Version.id).where(Version.model_id == model_id)).all()
        return SecretChange(info, created, tuple(str(i) for i in ids))

    def _managed(self, session: Session, caller: Caller, model_id: int) -> Model:
        model = session.get(Model, model_id) if 0 < model_id < self._MAX_ID else None
        if model is None or not can(caller, "read", model):
            raise ModelNotFound(f"model #{model_id} does not exist")
        if not can(caller, "manage", model):
            raise PermissionDenied(
                f"'{caller.name}' may not manage '{model.owner.name}/{model.name}', "
                "so not its secrets"
            )
        return model
