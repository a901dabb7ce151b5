"""Algorithmia's repository layout, read as a manifest: its algorithms need no ``algora.toml``.

An algorithm's repository on Algorithmia holds::

    algorithmia.conf     {"username": "demo", "algoname": "Hello", "language": "python3", ...}
    src/Hello.py         def apply(input), or ADK(apply, load).init(...)  (ADK: src/Algorithm.py)
    src/__init__.py
    requirements.txt     pip's format
    model_manifest.json  (ADK, optional) the files load() needs, checked by ADK itself

:func:`derive_manifest` reads such a folder (:func:`algora.modelfolder.layouts.find_manifest`
asks it when there is no ``algora.toml``, which always wins) as the manifest it implies:

- **name**: the name the model is published under (its repository's name when it is built from
  git, the ``owner/name`` of a publish request), else ``algoname`` in lowercase: Algora's names
  are lowercase, and its Algorithmia-compatible routes fold a name's case, so ``demo/Hello`` in
  an application still names ``demo/hello``. ``username`` is Algorithmia's owner and is not
  used: the owner is whoever publishes (``algora publish --owner``).
- **entrypoint**: ``src.<algoname>:apply`` when ``src/<algoname>.py`` exists (Algorithmia's
  Python runtimes), else ``src.<module>:apply`` for a name that is no Python module name
  (``my-model`` -> ``src/my_model.py``, as Algora's git template writes it), else
  ``src.Algorithm:apply`` (the ADK templates' ``src/Algorithm.py``). The worker serves plain
  ``apply`` functions and ADK algorithms alike (``algora.runtime.loader``, ``adk``).
- **interpreter**: ``language`` (or ``langauge``, as Algorithmia's own Python template spelt
  it; absent means Python 3) must name a Python 3 runtime (``python3``, ``python3-1``,
  ``python3.x``, ``python-3.x-1``, ``python3.x-adk``, ``python37``, ``python3.8``,
  ``python-3.9``, ...). Every Python 3 version runs on the platform's one interpreter
  (``ALGORA_PYTHON``); a build log notes a version the language named. Python 2, conda
  environments and other languages are refused, saying what is supported.
- **requirements**: ``requirements.txt`` (none when it is absent).
- **settings**, where the conf carries Algorithmia's settings: ``network_access`` (``full``
  grants the workers network access; ``isolated`` is the default), ``environment`` (``cpu``;
  anything else is noted in the build log: Algora's workers have no GPU, and the environment
  is built from ``requirements.txt``), and ``sample_input``, the
  input called once at every build (a string is sent as text, anything else as JSON), which
  Algorithmia took at publish instead. Other keys (``submitted_at``, ...) are ignored.

Calls time out after 300 s, Algorithmia's default (the server's ``max_call_timeout`` caps it).

Only the folder is read; nothing in it is imported or run.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path
from typing import Any

from algora.errors import InvalidManifest
from algora.modelfolder.found import FoundManifest
from algora.modelfolder.manifest import MANIFEST_NAME, NAME_PATTERN, validate_manifest

__all__ = [
    "CONF_NAME",
    "algorithmia_conf",
    "derive_manifest",
    "model_name",
    "python_module",
    "python_version",
]

CONF_NAME = "algorithmia.conf"
ALGORITHMIA_CALL_TIMEOUT = 300.0
ADK_SCRIPT = "Algorithm"
"""The ADK templates' script: ``src/Algorithm.py``."""

_ALGONAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_PYTHON3 = re.compile(
    r"^python[-_ ]?3(?:[.](?P<dotted>\d{1,2}|x)|(?P<joined>\d{1,2}))?(?:[-_.][a-z0-9.-]*)?$"
)
_CONDA = ("anaconda", "miniconda", "miniforge", "conda")
_MAX_CONF_BYTES = 64 * 1024
_SUPPORTED = (
    'Algora runs Python 3 algorithms: set "language" to a Python 3 runtime such as '
    '"python3", "python3-1", "python38" or "python-3.9"'
)


def derive_manifest(folder: Path, *, name: str | None = None) -> FoundManifest:
    """The manifest Algorithmia's layout in ``folder`` implies (see the module docstring)."""
    conf = _read_conf(folder)
    algoname = conf.get("algoname")
    if not isinstance(algoname, str) or not _ALGONAME.match(algoname):
        raise InvalidManifest(
            f'{CONF_NAME}: "algoname" must be the algorithm\'s name, 1-64 letters, digits, '
            f"'-' or '_' starting with a letter or digit (got {_shown(algoname)})"
        )
    notes: list[str] = []
    version = python_version(_language(conf))
    if version is not None:
        notes.append(
            f"{CONF_NAME} asks for Python {version}: the algorithm runs on the platform's "
            "Python 3 interpreter (ALGORA_PYTHON), as every model does"
        )
    module = _entry_module(folder, algoname)
    manifest: dict[str, Any] = {
        "model": {
            "name": name if name is not None else model_name(algoname),
            "entrypoint": f"src.{module}:apply",
        },
        "environment": {"requirements": "requirements.txt"},
    }
    network = conf.get("network_access") or "isolated"
    if network not in ("isolated", "full"):
        raise InvalidManifest(
            f'{CONF_NAME}: "network_access" is "isolated" or "full" (got {_shown(network)})'
        )
    # Algorithmia's calls could run for 5 minutes by default; the server's max still caps it.
    manifest["serving"] = {"timeout": ALGORITHMIA_CALL_TIMEOUT}
    if network == "full":
        manifest["serving"]["network"] = True
        notes.append(f"{CONF_NAME}: network_access full: the workers may reach the network")
    environment = conf.get("environment")
    if environment == "gpu":
        notes.append(
            f"{CONF_NAME}: environment gpu: Algora's workers have no GPU; the algorithm runs on CPU"
        )
    elif environment not in ("cpu", None, ""):
        notes.append(
            f"{CONF_NAME}: environment {_shown(environment)} is Algorithmia's; Algora builds "
            "the environment from requirements.txt"
        )
    sample = conf.get("sample_input")
    if sample is not None:
        manifest["example"] = {"text": sample} if isinstance(sample, str) else {"input": sample}
    derived = validate_manifest(manifest, f"the manifest derived from {CONF_NAME}")
    notes.insert(0, f"no {MANIFEST_NAME}: derived from {CONF_NAME}: entrypoint src.{module}:apply")
    return FoundManifest(derived, CONF_NAME, tuple(notes))


def model_name(algoname: str) -> str:
    """Algora's name for the Algorithmia algorithm ``algoname``: the same name in lowercase."""
    name = algoname.lower()
    if not NAME_PATTERN.match(name):
        raise InvalidManifest(
            f"{CONF_NAME}: the algorithm name {_shown(algoname)} cannot be a model name: use "
            "1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name


def python_module(name: str) -> str:
    """A Python module name for the algorithm ``name`` (``my-model`` -> ``my_model``,
    ``3d`` -> ``algorithm_3d``): the file Algora's git template writes for it."""
    module = name.replace("-", "_")
    if not module.isidentifier() or keyword.iskeyword(module):
        module = "algorithm_" + module
    return module


def python_version(language: object) -> str | None:
    """The Python 3 version an Algorithmia ``language`` names (``"3.8"``), or None when it
    names Python 3 without a version; raises InvalidManifest for anything else."""
    if language is None or language == "":
        return None
    if not isinstance(language, str):
        raise InvalidManifest(
            f'{CONF_NAME}: "language" {_shown(language)} is not supported: {_SUPPORTED}'
        )
    text = language.strip().lower()
    match = _PYTHON3.match(text)
    if match:
        minor = match["dotted"] or match["joined"]
        return None if minor in (None, "x") else f"3.{int(minor)}"
    if re.match(r"^python[-_ ]?2", text):  # python2, python2-langpack, python27, python-2.7
        raise InvalidManifest(
            f"{CONF_NAME}: language {_shown(language)} is Python 2, which Algora does not run: "
            f"port the algorithm to Python 3. {_SUPPORTED}"
        )
    if text.startswith(_CONDA):
        raise InvalidManifest(
            f"{CONF_NAME}: language {_shown(language)} is a conda environment, which Algora "
            "does not build: list the dependencies in requirements.txt (pip's format). "
            + _SUPPORTED
        )
    raise InvalidManifest(
        f"{CONF_NAME}: language {_shown(language)} is not supported: {_SUPPORTED}"
    )


def algorithmia_conf(
    algoname: str,
    *,
    username: str = "",
    language: str = "python3",
    settings: dict[str, Any] | None = None,
) -> str:
    """The text of an ``algorithmia.conf`` as Algorithmia wrote it, plus ``settings``."""
    conf: dict[str, Any] = {}
    if username:
        conf["username"] = username
    conf["algoname"] = algoname
    conf["language"] = language
    conf.update(settings or {})
    return json.dumps(conf, indent=4) + "\n"


# -- helpers ------------------------------------------------------------------------------------
def _read_conf(folder: Path) -> dict[str, Any]:
    path = folder / CONF_NAME
    try:
        data = path.read_bytes()[: _MAX_CONF_BYTES + 1]
    except OSError as exc:
        raise InvalidManifest(f"{CONF_NAME} cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_CONF_BYTES:
        raise InvalidManifest(f"{CONF_NAME} is larger than {_MAX_CONF_BYTES // 1024} KiB")
    try:
        conf = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidManifest(f"{CONF_NAME} is not UTF-8 text: save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidManifest(
            f"{CONF_NAME} is not valid JSON ({exc.msg} at line {exc.lineno}): it holds an "
            'object such as {"algoname": "Hello", "language": "python3"}'
        ) from None
    if not isinstance(conf, dict):
        raise InvalidManifest(
            f'{CONF_NAME} must hold a JSON object such as {{"algoname": "Hello", '
            '"language": "python3"}'
        )
    return conf


def _language(conf: dict[str, Any]) -> object:
    """``language``, else ``langauge``: Algorithmia's Python templates misspelt the key."""
    return conf["language"] if "language" in conf else conf.get("langauge")


def _entry_module(folder: Path, algoname: str) -> str:
    """The module under ``src/`` that is the algorithm (see the module docstring)."""
    src = folder / "src"
    candidates = [m for m in (algoname, python_module(algoname)) if _importable(m)]
    candidates.append(ADK_SCRIPT)
    for module in dict.fromkeys(candidates):
        script = src / f"{module}.py"
        if script.is_file() and script.resolve().is_relative_to(folder.resolve()):
            return module
    looked = ", ".join(f"src/{m}.py" for m in dict.fromkeys(candidates))
    raise InvalidManifest(
        f"{CONF_NAME} names the algorithm '{algoname}' but the model folder has none of "
        f"{looked}: Algorithmia's layout keeps the algorithm in src/<algoname>.py (src/"
        f"{ADK_SCRIPT}.py for ADK algorithms)"
    )


def _importable(module: str) -> bool:
    return module.isidentifier() and not keyword.iskeyword(module)


def _shown(value: object) -> str:
    """A value from the conf as it would be written in it, cut short."""
    return json.dumps(value)[:80]
