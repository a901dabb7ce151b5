"""The zygote: an interpreter of one environment that has imported its heavy packages and forks
new workers on request, so that a cold start costs a fork and the model's load, not the imports.

Launched by the gateway (``algora/workers/zygote.py``) with the environment's own interpreter::

    <env python> -I -c "...; from algora_runtime.zygote import main; main()" \
        --sources DIR --homes DIR --channels DIR [--sandbox]

Its fd 0 is its control socket (``SOCK_SEQPACKET``): each message is one JSON object, and the
descriptors that travel with it (``SCM_RIGHTS``).

- ``{"type": "fork", "id": N, "source": ..., "home": ..., "channel": ... | null, "network":
  bool, "tmp_size": bytes | null}`` with two descriptors, the worker's end of its frame socket
  and its log file: the zygote forks a worker and answers ``{"type": "forked", "id": N, "pid":
  ...}`` with a pidfd of it, then ``{"type": "exited", "id": N, "status": ...}`` when it ends.
- The zygote says ``{"type": "ready", "modules": M, "seconds": S}`` once it has preloaded.

The fork request holds no secret: the worker reads its argv and environment (which may hold the
model's secrets) from its own frame socket, in a first ``start`` frame, so nothing of one model
stays in the zygote's memory for the next one to find.

In the sandbox (``--sandbox``: the zygote runs in bwrap and sees every version's folder, home and
socket folder of the data directory), each forked worker isolates itself before it reads
anything: new user, mount, PID, IPC and UTS namespaces (and network, unless the model is
granted it), empty tmpfs over the folders of sources, homes and sockets with only its own bound
back, a private ``/tmp``, then a second fork so that the model runs as PID 1 of its own PID
namespace, with no capabilities left and ``no_new_privs``. Its first process waits for it and
exits with its status as bwrap does (128 + N for signal N). Every process of the zygote is
non-dumpable, so that no worker can read another's memory, environment or descriptors through
``/proc``. Without the sandbox a worker simply forks (in a session of its own).

Standard library only; relative imports only (the package runs as ``algora_runtime``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
import warnings
from importlib import metadata
from typing import Any

from . import main as worker
from .frames import read_frame

__all__ = ["main"]

_SKIP = frozenset(
    {
        "pip", "setuptools", "wheel", "pkg_resources", "distutils", "pytest", "py", "pluggy",
        "tests", "test", "testing", "conftest", "setup", "antigravity", "this", "idlelib",
        "tkinter", "turtle", "algora_runtime", "algora",
    }
)  # fmt: skip
"""Names never preloaded: tools, test suites, and modules whose import has visible effects."""
_PRELOAD_BUDGET = 60.0
"""Seconds the zygote spends preloading at most before it serves."""
_MSG_SIZE = 1 << 16

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_SANDBOX_FOLDER = "/run/algora"

_libc = ctypes.CDLL(None, use_errno=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of a zygote; returns never (exits when its control socket closes)."""
    started = time.perf_counter()
    os.umask(0o077)
    _call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)
    args = _parse_args(argv)
    control = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # what preloaded packages print goes to the log
    modules = _preload(time.monotonic() + _PRELOAD_BUDGET)
    worker.flush_std()  # else a forked worker would write what is left onto its frame socket
    seconds = round(time.perf_counter() - started, 6)
    _send(control, {"type": "ready", "modules": modules, "seconds": seconds})
    _serve(control, args)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="algora_runtime.zygote", description="Algora zygote")
    parser.add_argument("--sources", required=True, help="the folder of every version's source")
    parser.add_argument("--homes", required=True, help="the folder of the workers' homes")
    parser.add_argument("--channels", required=True, help="the folder of the gateway sockets")
    parser.add_argument("--sandbox", action="store_true", help="isolate each forked worker")
    return parser.parse_args(argv)


def _top_level_names() -> list[str]:
    """The importable top-level names of the environment's installed distributions."""
    names: set[str] = set()
    for dist in metadata.distributions():
        listed = dist.read_text("top_level.txt")
        if listed:
            names.update(line.strip() for line in listed.splitlines())
            continue
        for file in dist.files or ():
            parts = file.parts
            if len(parts) == 1 and parts[0].endswith(".py"):
                names.add(parts[0][:-3])
            elif len(parts) == 2 and parts[1] == "__init__.py":
                names.add(parts[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_") and n not in _SKIP)


def _preload(deadline: float) -> int:
    """Import the environment's packages and their direct submodules; failures are ignored.

    The direct submodules matter: a pickled scikit-learn model imports ``sklearn.linear_model``
    and scipy with it, which is most of a cold start.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _top_level_names():
            if time.monotonic() > deadline or not _try_import(name):
                continue
            path = getattr(sys.modules[name], "__path__", None)
            for sub in pkgutil.iter_modules(path) if path is not None else ():
                if time.monotonic() > deadline:
                    break
                if not sub.name.startswith("_") and sub.name not in _SKIP:
                    _try_import(f"{name}.{sub.name}")
    return len(sys.modules)


def _try_import(name: str) -> bool:
    try:
        importlib.import_module(name)
    except BaseException:
        return False
    return True


def _send(control: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    socket.send_fds(control, [json.dumps(message).encode()], fds or [])


def _serve(control: socket.socket, args: argparse.Namespace) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is not control:
                os.read(wake_r, 512)
                _reap(control, children)
                continue
            data, fds, _, _ = socket.recv_fds(control, _MSG_SIZE, 2)
            if not data:  # the gateway is gone: so are its workers
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                os._exit(0)
            request = json.loads(data)
            if request.get("type") != "fork" or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                keep = (control.detach(), wake_r, wake_w)
                selector.close()
                _child(request, fds[0], fds[1], keep, args)
            for fd in fds:
                os.close(fd)
            children[pid] = int(request["id"])
            pidfd = os.pidfd_open(pid)
            _send(control, {"type": "forked", "id": request["id"], "pid": pid}, [pidfd])
            os.close(pidfd)


def _reap(control: socket.socket, children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ident = children.pop(pid, None)
        if ident is not None:
            code = os.waitstatus_to_exitcode(status)
            _send(control, {"type": "exited", "id": ident, "status": code})


def _child(
    request: dict[str, Any],
    sock: int,
    log: int,
    inherited: tuple[int, ...],
    args: argparse.Namespace,
) -> None:
    """The forked worker: never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in inherited:
            os.close(fd)
        os.dup2(sock, 0)
        os.dup2(sock, 1)
        os.dup2(log, 2)
        os.close(sock)
        os.close(log)
        os.setsid()
        if args.sandbox:
            _isolate(request, args)
        _become_worker(request["source"])
    except BaseException:
        with contextlib.suppress(OSError):
            os.write(2, f"algora_runtime.zygote: {traceback.format_exc()}".encode())
        os._exit(127)


def _become_worker(source: str) -> None:
    """Read the ``start`` frame, take its environment, and run the worker's ``main``."""
    with os.fdopen(os.dup(0), "rb", buffering=0) as stream:
        frame = read_frame(stream)
    if frame is None or frame[0].get("type") != "start":
        os._exit(1)
    header = frame[0]
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(header["env"]).items()})
    if "tempfile" in sys.modules:
        import tempfile

        tempfile.tempdir = None  # the zygote's, cached: the worker's own TMPDIR counts
    _forget_shadowed(source)
    argv = [str(arg) for arg in header["argv"]]
    sys.argv = ["algora_runtime", *argv]
    worker.main(argv)


def _forget_shadowed(source: str) -> None:
    """Drop preloaded modules that the model's folder shadows: its own files come first."""
    try:
        own = {entry.split(".", 1)[0] for entry in os.listdir(source)}  # noqa: PTH208
    except OSError:
        return
    for name in [m for m in sys.modules if m.split(".", 1)[0] in own]:
        del sys.modules[name]


def _call(name: str, *args: Any) -> int:
    result = int(getattr(_libc, name)(*args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    def enc(value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    _call("mount", enc(source), enc(target), enc(fstype), flags, enc(data or None))


def _isolate(request: dict[str, Any], args: argparse.Namespace) -> None:
    """Namespaces, mounts and privileges of a sandboxed worker; returns in the model's process."""
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
    if not request.get("network"):
        flags |= _CLONE_NEWNET
    _call("prctl", _PR_SET_DUMPABLE, 1, 0, 0, 0)  # /proc/self/uid_map is not writable else
    _call("unshare", flags)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
        with open(f"/proc/self/{name}", "w") as f:  # noqa: PTH123 - stdlib-only runtime
            f.write(text)
    with open("/proc/self/gid_map", "w") as f:  # noqa: PTH123
        f.write(f"{gid} {gid} 1")
    _call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, "")
    own = [(request["source"], args.sources), (request["home"], args.homes)]
    opened = [(os.open(path, os.O_PATH | os.O_DIRECTORY), root, path) for path, root in own]
    channel = request.get("channel")
    channel_fd = os.open(channel, os.O_PATH | os.O_DIRECTORY) if channel else None
    data = os.path.dirname(args.sources)  # noqa: PTH120
    data_fd = os.open(data, os.O_PATH | os.O_DIRECTORY)
    size = f",size={request['tmp_size']}" if request.get("tmp_size") else ""
    for tmp in ("/tmp", "/dev/shm"):  # noqa: S108 - private to this worker
        if os.path.isdir(tmp):  # noqa: PTH112
            _mount("tmpfs", tmp, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=1777{size}")
            if data.startswith(tmp + "/"):  # the data directory (as tests have it) comes back
                os.makedirs(data, exist_ok=True)  # noqa: PTH103
                _mount(f"/proc/self/fd/{data_fd}", data, None, _MS_BIND | _MS_REC, "")
    os.close(data_fd)
    # Every other version's source, home and socket goes under an empty tmpfs; only this
    # worker's own are bound back, where it expects them.
    for root in (args.sources, args.homes, args.channels):
        _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    for fd, root, path in opened:
        target = os.path.join(root, os.path.basename(path))  # noqa: PTH118,PTH119
        os.mkdir(target)  # noqa: PTH102
        _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND, "")
        os.close(fd)
    if channel_fd is not None:
        _mount(f"/proc/self/fd/{channel_fd}", _SANDBOX_FOLDER, None, _MS_BIND, "")
        os.close(channel_fd)
    if not request.get("network"):
        _loopback_up()
    # The first fork is PID 1 of the new namespace: it reaps, as bwrap's init does (PID 1
    # ignores signals it has no handler for, even SIGXCPU, so the model must not be it).
    # The second is the model's process.
    for _ in range(2):
        pid = os.fork()
        if pid:
            _wait_and_exit(pid)
        _call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _drop_privileges()


def _wait_and_exit(pid: int) -> None:
    """Hold nothing of the worker, reap until ``pid`` ends, and exit with its status as bwrap
    does (128 + N for signal N)."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    while True:
        try:
            ended, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
        if ended == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _loopback_up() -> None:
    """Bring up the loopback of a new network namespace (the gateway forwarder listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _drop_privileges() -> None:
    """No capabilities, in any set, and none to gain back by exec (``no_new_privs``)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:  # noqa: PTH123
        last = int(f.read())
    for cap in range(last + 1):
        _call("prctl", _PR_CAPBSET_DROP, cap, 0, 0, 0)
    _call("prctl", _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _call("capset", header, data)
    _call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
