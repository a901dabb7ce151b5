"""Least privilege for worker processes: the bubblewrap sandbox and the resource limits.

A sandboxed worker runs under ``bwrap`` (bubblewrap) with

- its own PID, IPC, UTS and cgroup namespaces, and its own network namespace (nothing but its
  own loopback) unless the model is granted the network;
- no capabilities (``--cap-drop ALL``: run as root, bwrap would otherwise keep them);
- a read-only view of the system directories, a few files of ``/etc``, the base interpreter,
  the model's environment, the installed runtime and the model's own source; its private HOME
  read-write; a private ``/tmp`` and ``/dev/shm`` (tmpfs, capped at its memory limit); the
  folder of its own socket to the gateway, read-only, at ``/run/algora`` (see
  ``algora.workers.channel``: the only way out of a worker without the network);
- nothing else. The data directory is covered by an empty tmpfs first, so the registry
  database, the admin key, the blobs and other models' sources and homes are not there at all.

It is not started with ``--new-session``: the worker already leads its own session (the pool
kills its process group) and has no controlling terminal. Killing bwrap kills the sandbox
(``--die-with-parent``, and the PID namespace dies with its init).

Resource limits do not depend on the sandbox: the runtime sets them itself from its argv
(:func:`limit_args`; ``algora/runtime/main.py`` says why RLIMIT_DATA and how the CPU limit is
per call), so they hold with or without bwrap and on any backend.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from algora.errors import Unavailable
from algora.runtime.main import EXIT_OUT_OF_MEMORY
from algora.workers.channel import SANDBOX_FOLDER
from algora.workers.spec import WorkerSpec

__all__ = [
    "SandboxMode",
    "SandboxStatus",
    "bwrap_command",
    "exit_reason",
    "limit_args",
    "normalize_status",
    "sandbox_notice",
    "sandbox_status",
    "use_sandbox",
    "zygote_bwrap_command",
]

SandboxMode = Literal["auto", "required", "off"]

_MIB = 1 << 20
_CHECK_TIMEOUT = 10.0
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    # the dynamic loader, users and groups (no passwords), time, certificates, MIME types
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/localtime",
    "/etc/timezone", "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/crypto-policies",
    "/etc/mime.types", "/etc/os-release",
)  # fmt: skip
_NETWORK_ETC_FILES = (
    "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols",
)  # fmt: skip
_OPTIONAL_DIRS = ("/sys/devices/system/cpu",)
"""Read-only when present: CPU topology, which BLAS and thread pools size themselves from."""

_ZYGOTE_ID = "1000"
"""The id a zygote (and its workers) runs as in its user namespace when the gateway is root."""
_UNENFORCED = "network isolation, file-system isolation are NOT enforced"


@dataclass(frozen=True)
class SandboxStatus:
    """Whether bwrap works on this machine, and why not."""

    available: bool
    reason: str
    """Why it is unavailable ("bwrap not found", "bwrap not permitted: ..."); "" when it works."""
    executable: str = ""
    sizes: bool = False
    """Whether this bwrap supports ``--size`` (0.7 and later) to cap a tmpfs."""


@functools.cache
def sandbox_status() -> SandboxStatus:
    """Probe bwrap once (``bwrap --ro-bind / / true``) and remember the answer."""
    executable = shutil.which("bwrap")
    if executable is None:
        return SandboxStatus(False, "bwrap not found")
    try:
        probe = subprocess.run(
            [executable, "--ro-bind", "/", "/", "true"],
            capture_output=True,
            timeout=_CHECK_TIMEOUT,
            check=False,
        )
        helptext = subprocess.run(
            [executable, "--help"], capture_output=True, timeout=_CHECK_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxStatus(False, f"bwrap not permitted: {exc}")
    if probe.returncode != 0:
        detail = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return SandboxStatus(False, "bwrap not permitted: " + (detail[-1] if detail else "failed"))
    return SandboxStatus(True, "", executable, sizes=b"--size" in helptext.stdout)


def use_sandbox(mode: SandboxMode) -> bool:
    """Whether a worker or a build command runs in the sandbox under ``mode`` (the ``sandbox``
    setting): the one rule for serving and building alike.

    ``off``: never. ``required``: always, and without a working bwrap it raises
    :class:`Unavailable`, so that nothing is built or served. ``auto``: when bwrap works here;
    where it does not, models build and serve without it, as :func:`sandbox_notice` says once
    at start-up.
    """
    if mode == "off":
        return False
    status = sandbox_status()
    if mode == "required" and not status.available:
        raise Unavailable(
            f"the worker sandbox is required (ALGORA_SANDBOX=required) but unavailable "
            f"({status.reason}): no model can be built or served",
            details={"reason": status.reason},
        )
    return status.available


def sandbox_notice(mode: SandboxMode) -> tuple[int, str] | None:
    """What to log at start-up about the sandbox, as ``(logging level, message)``; None if fine.

    It states :func:`use_sandbox`'s rule as it applies on this machine.
    """
    if mode == "off":
        return (
            logging.WARNING,
            f"worker sandbox disabled (ALGORA_SANDBOX=off): models build and serve without it; "
            f"{_UNENFORCED}; memory and CPU limits still are",
        )
    status = sandbox_status()
    if status.available:
        return None
    if mode == "required":
        return (
            logging.ERROR,
            f"worker sandbox required but unavailable ({status.reason}): no model can be built "
            "or served; install bubblewrap (Debian: apt-get install bubblewrap)",
        )
    return (
        logging.WARNING,
        f"worker sandbox unavailable ({status.reason}): models build and serve without it; "
        f"{_UNENFORCED}; memory and CPU limits still are (install bubblewrap, or set "
        "ALGORA_SANDBOX=required to refuse)",
    )


def limit_args(spec: WorkerSpec) -> list[str]:
    """The runtime's own arguments that set the worker's resource limits."""
    args: list[str] = []
    if spec.memory_bytes is not None:
        args += ["--memory-limit", str(spec.memory_bytes)]
    if spec.cpu_seconds is not None:
        args += ["--cpu-limit", repr(float(spec.cpu_seconds))]
    return args


@functools.cache
def _interpreter_dirs(python: Path) -> tuple[str, ...]:
    """The base interpreter's prefixes: a venv's ``bin/python`` links to it. Asked once."""
    program = "import sys; print(sys.base_prefix); print(sys.base_exec_prefix)"
    out = subprocess.run(
        [str(python), "-I", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    real = python.resolve().parent.parent  # where the links end
    return tuple(dict.fromkeys([*out.split(), str(real)]))


def _symlink_hops(path: Path) -> list[tuple[str, str]]:
    """``(link, target)`` for each symbolic link met from ``path`` to the file it ends at."""
    hops: list[tuple[str, str]] = []
    current = Path(os.path.abspath(path))  # noqa: PTH100 - keep links, unlike resolve()
    for _ in range(40):
        if not current.is_symlink():
            break
        target = str(current.readlink())
        hops.append((str(current), target))
        current = Path(os.path.normpath(current.parent / target))
    return hops


def bwrap_command(
    command: list[str],
    spec: WorkerSpec,
    data_dir: Path,
    home: Path,
    runtime_dir: Path | None,
    *,
    writable_source: bool = False,
) -> list[str]:
    """``command`` wrapped in bwrap as this module's docstring describes.

    A publish-time build command runs the same way, with its source writable (what it writes
    becomes part of the version) and no worker runtime. Blocking (the first time per
    interpreter it runs it once); call it off the event loop.
    """
    source = spec.source_dir.resolve()
    argv = _bwrap_base(spec, data_dir, runtime_dir)
    if spec.gateway_folder is not None:  # the worker's socket to the gateway, and nothing more
        argv += ["--ro-bind", str(spec.gateway_folder), SANDBOX_FOLDER]
    argv += ["--bind" if writable_source else "--ro-bind", str(source), str(source)]
    if str(source) != str(spec.source_dir):
        argv += ["--symlink", str(source), str(spec.source_dir)]
    argv += ["--bind", str(home), str(home), "--chdir", str(spec.source_dir)]
    return [*argv, "--", *command]


def zygote_bwrap_command(
    command: list[str], spec: WorkerSpec, data_dir: Path, runtime_dir: Path, roots: list[Path]
) -> list[str]:
    """``command`` (a zygote of ``spec``'s environment) wrapped in bwrap: as a worker of
    ``spec`` is, but seeing every folder of ``roots`` (the sources read-only, the homes
    read-write, the socket folders read-only) instead of one worker's own. Each worker it
    forks hides all but its own (``algora/runtime/zygote.py``); the zygote keeps
    ``--cap-drop ALL`` and may still create the user namespaces that its workers need."""
    sources, homes, channels = (str(root.resolve()) for root in roots)
    argv = _bwrap_base(spec, data_dir, runtime_dir)
    # A user namespace of its own, in which each worker nests its own. Root cannot map uid 0
    # into a nested one without CAP_SETFCAP (Linux 5.12 and later), so under a gateway run as
    # root the zygote is an ordinary id in its namespace (still root's files outside).
    argv[1:1] = ["--unshare-user"] + (["--uid", _ZYGOTE_ID, "--gid", _ZYGOTE_ID] * _as_root())
    argv += ["--ro-bind", sources, sources, "--bind", homes, homes]
    argv += ["--ro-bind", channels, channels, "--dir", SANDBOX_FOLDER, "--chdir", "/"]
    return [*argv, "--", *command]


def _as_root() -> int:
    return int(os.geteuid() == 0)


def _bwrap_base(spec: WorkerSpec, data_dir: Path, runtime_dir: Path | None) -> list[str]:
    """What every sandbox of ``spec``'s environment holds, before its own folders."""
    status = sandbox_status()
    if not status.available:
        raise Unavailable(f"the worker sandbox is unavailable: {status.reason}")
    data = data_dir.resolve()
    environment = Path(os.path.abspath(spec.python)).parent.parent  # noqa: PTH100 - keep links
    argv = [
        status.executable, "--die-with-parent", "--cap-drop", "ALL",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    ]  # fmt: skip
    if not spec.network:
        argv.append("--unshare-net")
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /lib -> usr/lib
            argv += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            argv += ["--ro-bind", name, name]
    etc = _ETC_FILES + (_NETWORK_ETC_FILES if spec.network else ())
    for name in (*etc, *_OPTIONAL_DIRS):
        argv += ["--ro-bind-try", name, name]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    size = ["--size", str(spec.memory_bytes)] if status.sizes and spec.memory_bytes else []
    argv += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm"]  # noqa: S108 - private
    # Hide the whole data directory, then bind back only what this worker needs, even where
    # the data directory lies under a directory bound above.
    argv += ["--tmpfs", str(data)]
    if spec.runtime == "python":
        for prefix in _interpreter_dirs(spec.python):
            argv += ["--ro-bind", prefix, prefix]
    if spec.node_modules is not None:
        argv += ["--ro-bind", str(spec.node_modules), str(spec.node_modules)]
    argv += ["--ro-bind", str(environment), str(environment)]
    for link, target in _symlink_hops(spec.python):
        if not Path(link).is_relative_to(environment):
            argv += ["--symlink", target, link]
    if runtime_dir is not None:
        argv += ["--ro-bind", str(runtime_dir), str(runtime_dir)]
    return argv


def normalize_status(code: int) -> int:
    """A sandboxed worker's exit status as if it were not sandboxed.

    bwrap exits with 128 + N when its command dies of signal N; subprocess reports -N for a
    process of its own. (A model that calls ``exit(137)`` itself reads as SIGKILL: rare.)
    """
    if 128 < code < 128 + signal.NSIG:
        return -(code - 128)
    return code


def exit_reason(spec: WorkerSpec, status: int) -> tuple[str, str] | None:
    """``(limit, phrase)`` when exit status ``status`` means the worker hit a limit.

    ``limit`` is ``"memory"`` or ``"cpu_time"``; ``phrase`` completes "the worker ...".
    """
    if status == EXIT_OUT_OF_MEMORY and spec.memory_bytes is not None:
        mib = math.ceil(spec.memory_bytes / _MIB)
        return "memory", f"ran out of memory (limit {mib} MiB)"
    if status == -signal.SIGXCPU and spec.cpu_seconds is not None:
        return "cpu_time", f"exceeded its CPU-time limit of {spec.cpu_seconds:g} s"
    return None
