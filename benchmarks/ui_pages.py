"""How fast the web UI's pages answer with 1,000 models published, on the embedded defaults.

    .venv/bin/python benchmarks/ui_pages.py                 # 1,000 models, 20 rounds
    .venv/bin/python benchmarks/ui_pages.py --models 200 --rounds 3 --keep

1. ``algora serve`` on a fresh data directory (SQLite, the local store, local workers); five
   users publish one real model each through the API (built, smoke-tested, ready), each with a
   README; one of them makes an organization with the others as members.
2. The server stops, and the rest of the models are made from those five as a publish would
   leave them: for each new ``owner/name``, a model row (description, tags; a third public, a
   third visible to the owner's organizations, a third private, some granted to bob) and a
   ready version whose archive is a new blob in the store holding that model's own README and
   manifest; the version shares its template's environment and schemas, as versions with the
   same lock do. (Publishing 1,000 models through the pipeline would take an hour of smoke
   tests and say nothing more about the pages.)
3. The server starts again. The admin (who sees every model), then bob (his own, the public
   ones, his organization's and those granted to him) sign in through the sign-in form; every
   page is fetched once (warm-up: the search documents and the in-memory index are built then),
   then ``--rounds`` times in a row; the table shows each page's p50 and p95 in ms (the budget,
   100 ms, is marked) and the server's CPU time per request, which other work on the machine
   sways less than wall time. The numbers go to ``benchmarks/results/ui_pages-<time>.json`` too.

Everything listens on 127.0.0.1 only; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.tables import Grant, Model, Principal, Version
from algora.settings import Settings
from algora.store.factory import open_store
from algora.testing import RunningServer, write_model

RESULTS = Path(__file__).parent / "results"
BUDGET_MS = 100.0
USERS = ("ann", "bob", "cyd", "dee", "eve")
WORDS = (
    "sentiment",
    "translation",
    "vision",
    "speech",
    "ranking",
    "forecast",
    "anomaly",
    "fraud",
    "churn",
    "embedding",
    "classifier",
    "regression",
    "detector",
    "parser",
    "summarizer",
    "tagger",
    "recommender",
    "segmenter",
    "ocr",
    "zebracorn",
    "quasar",
    "nebula",
    "lattice",
    "harbor",
    "meadow",
)
SOURCE = 'def apply(input: str) -> str:\n    return "Hello " + input\n'


def _readme(rng: random.Random, name: str) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(120))
    return f"# {name}\n\n{body}\n\n## Input\n\nA sentence.\n\n```python\nclient.call('hi')\n```\n"


def _archive(readme: str, name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {
            "README.md": readme,
            "algora.toml": f'[model]\nname = "{name}"\nentrypoint = "model:apply"\n',
            "model.py": SOURCE,
        }
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_templates(server: RunningServer, root: Path) -> dict[str, str]:
    """One real model per user, published through the API; the users' keys."""
    keys: dict[str, str] = {}
    with server.client() as admin:
        for user in USERS:
            made = admin.request("POST", "/api/v1/principals", json={"name": user})
            made.raise_for_status()
            keys[user] = made.json()["key"]
    rng = random.Random(1)
    for user in USERS:
        folder = write_model(
            root / f"{user}-first", "first", SOURCE,
            files={"README.md": _readme(rng, f"{user}/first")},
            extra_manifest='description = "the first"\n[example]\ninput = "world"\n',
        )  # fmt: skip
        with server.client(keys[user]) as client:
            client.publish(folder, owner=user)
    with server.client(keys["ann"]) as ann:
        ann.request("POST", "/api/v1/orgs", json={"name": "lab"}).raise_for_status()
        for user in USERS[1:]:
            ann.request(
                "PUT", f"/api/v1/orgs/lab/members/{user}", json={"role": "member"}
            ).raise_for_status()
        ann.request(
            "PUT", "/api/v1/models/ann/first/grants/bob", json={"right": "call"}
        ).raise_for_status()
    return keys


def clone_models(data_dir: Path, count: int) -> None:
    """Models up to ``count``, each with a ready version, made as a publish leaves them."""
    settings = Settings(data_dir=data_dir)
    store = open_store(settings)
    engine = create_registry_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    rng = random.Random(2)
    scratch = Path(tempfile.mkdtemp(dir=data_dir.parent))
    with sessions() as session:
        templates = list(session.scalars(select(Version).where(Version.status == "ready")))
        owners = {p.name: p for p in session.scalars(select(Principal))}
        have = session.query(Model).count()
        for index in range(count - have):
            template = templates[index % len(templates)]
            owner = owners[template.model.owner.name]
            name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{index}"
            blob = scratch / "archive.tar.gz"
            blob.write_bytes(_archive(_readme(rng, f"{owner.name}/{name}"), name))
            archive_hash = store.put_file(blob)
            model = Model(
                owner_id=owner.id, name=name,
                description=" ".join(rng.choice(WORDS) for _ in range(8)),
                visibility=("public", "organization", "private")[index % 3],
                tags=rng.sample(WORDS, 3),
            )  # fmt: skip
            session.add(model)
            session.flush()
            version = Version(
                model_id=model.id, major=1, minor=0, patch=0, status="ready",
                content_hash=archive_hash, archive_hash=archive_hash,
                environment_hash=template.environment_hash, manifest=template.manifest,
                input_schema=template.input_schema, output_schema=template.output_schema,
                lineage=template.lineage, build_log=template.build_log,
                published_by=owner.id, ready_at=template.ready_at,
            )  # fmt: skip
            session.add(version)
            if index % 10 == 5:  # some models shared with one person
                session.add(Grant(model_id=model.id, grantee_id=owners["bob"].id, right="call"))
            if index % 200 == 199:
                session.commit()
        session.commit()
    engine.dispose()


def sign_in(http: httpx.Client, key: str) -> None:
    page = http.get("/ui/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    answer = http.post("/ui/signin", data={"csrf": token.group(1), "key": key, "next": "/ui/"})
    assert answer.status_code == 303, answer.text[:500]


PAGES = {
    "catalog": "/ui/",
    "search": "/ui/?q=zebracorn+quasar",
    "search (one word, prefix)": "/ui/?q=neb",
    "filters": "/ui/?owner=bob&status=ready&visibility=public&runtime=python",
    "sort by recent": "/ui/?sort=recent",
    "sort by calls": "/ui/?sort=calls",
    "model page": "/ui/models/ann/first",
    "model access": "/ui/models/ann/first/access",
    "build log": "/ui/models/ann/first/versions/1.0.0/log",
    "environment": "/ui/models/ann/first/versions/1.0.0/environment",
    "keys": "/ui/keys",
    "audit log": "/ui/audit",
    "audit search": "/ui/audit?principal=ann&action=model.call",
    "data": "/ui/data",
    "users": "/ui/admin/users",
    "organizations": "/ui/admin/orgs",
    "organization": "/ui/admin/orgs/lab",
}


@dataclass
class Timings:
    """A page's wall times (ms) and the server's CPU time per request (ms; None off Linux)."""

    wall: list[float] = field(default_factory=list)
    cpu: float | None = None


def cpu_seconds(pid: int) -> float | None:
    """The process's user and system CPU time so far, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_pages(url: str, key: str, rounds: int, pid: int) -> dict[str, Timings]:
    """Each page's timings, ``rounds`` requests in a row; a page the key may not see (403), or
    that this version of the server does not have (404), is left out. CPU time is the server's
    over those requests (less swayed by other work on the machine than wall time)."""
    timings: dict[str, Timings] = {}
    with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as http:
        sign_in(http, key)
        for page, path in PAGES.items():  # warm-up, not recorded
            answer = http.get(path)
            assert answer.status_code in (200, 403, 404), (path, answer.status_code)
            if answer.status_code == 200:
                timings[page] = Timings()
        for page, timing in timings.items():
            before = cpu_seconds(pid)
            for _round in range(rounds):
                started = time.perf_counter()
                answer = http.get(PAGES[page])
                timing.wall.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (page, answer.status_code)
            after = cpu_seconds(pid)
            if before is not None and after is not None:
                timing.cpu = (after - before) * 1000 / rounds
    return timings


def report(timings: dict[str, Timings], who: str) -> list[dict[str, Any]]:
    rows = []
    print(f"\n{who}\n{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms':>8}")
    for page, timing in timings.items():
        ordered = sorted(timing.wall)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        cpu = f"{timing.cpu:8.1f}" if timing.cpu is not None else f"{'-':>8}"
        flag = "" if p95 < BUDGET_MS else f"  over {BUDGET_MS:.0f} ms"
        print(f"{page:<28} {p50:8.1f} {p95:8.1f} {cpu}{flag}")
        rows.append({"who": who, "page": page, "p50_ms": p50, "p95_ms": p95, "cpu_ms": timing.cpu})
    left_out = [page for page in PAGES if page not in timings]
    if left_out:
        print(f"(not allowed or not there, so not timed: {', '.join(left_out)})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="algora-ui-bench-"))
    data_dir = root / "data"
    started = time.perf_counter()
    with RunningServer(data_dir, start_timeout=120) as server:
        keys = publish_templates(server, root)
    clone_models(data_dir, args.models)
    print(f"{args.models} models ready in {time.perf_counter() - started:.0f} s ({root})")
    with RunningServer(data_dir, start_timeout=120) as server:
        assert server.process is not None
        pid, rounds = server.process.pid, args.rounds
        rows = report(time_pages(server.url, server.key, rounds, pid), "admin (sees every model)")
        rows += report(time_pages(server.url, keys["bob"], rounds, pid), "bob (own and public)")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"ui_pages-{stamp}.json"
    out.write_text(json.dumps({"models": args.models, "rounds": args.rounds, "rows": rows}))
    print(f"\nwritten to {out}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
