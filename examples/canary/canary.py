"""Move live traffic to a new version on evidence: a canary driven from 10 % to 100 %.

Publishes ``v1/`` as 1.0.0 and ``v2/`` as 2.0.0 of ``canary-demo`` (both record their answers:
``[monitoring] feedback = true``), points the alias ``production`` at 1.0.0 90 % and 2.0.0
10 %, then, at each step, sends traffic and the ground truth of every call (here the truth is
known at once; in life it comes later), reads the alias's comparison report, and moves the
canary on (10 -> 50 -> 100 %) while 2.0.0 is not worse than 1.0.0: accuracy not lower by more
than ``--tolerance``, error rate not higher. If it is worse, the alias goes back to 1.0.0.

    ALGORA_URL=http://127.0.0.1:8000 ALGORA_KEY=... python examples/canary/canary.py

Exit status: 0 when 2.0.0 takes all the traffic, 1 when the canary was rolled back.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algora.errors import NotFound
from algora.sdk.client import Client

HERE = Path(__file__).parent
MODEL, ALIAS, OLD, NEW = "canary-demo", "production", "1.0.0", "2.0.0"
STEPS = (10, 50, 100)


def truth(x: float) -> str:
    """What the data says: the label a perfect model gives."""
    return "high" if x > 0.5 else "low"


def publish(client: Client, owner: str) -> None:
    for folder, version in (("v1", OLD), ("v2", NEW)):
        try:
            client.version(f"{owner}/{MODEL}", version)
        except NotFound:  # not published yet
            client.publish(HERE / folder, version=version)
            print(f"published {owner}/{MODEL} {version}")


def traffic(client: Client, ref: str, calls: int, rng: random.Random) -> None:
    """Call the alias ``calls`` times, sending each call's ground truth as feedback."""
    handle = client.model(ref)
    for _ in range(calls):
        x = rng.random()
        answer = handle.call_full({"x": x})
        if answer.request_id is not None:
            client.feedback(answer.request_id, label=truth(x))


def side(report: dict[str, Any], version: str) -> dict[str, Any]:
    return next(s for s in (report["primary"], *report["others"]) if s["version"] == version)


def not_worse(report: dict[str, Any], tolerance: float, minimum: int) -> bool | None:
    """Whether the new version is not worse than the old; None while it has too few scored
    calls to say."""
    old, new = side(report, OLD), side(report, NEW)
    if new["scored"] < minimum or old["scored"] < minimum:
        return None
    accurate = new["accuracy"] >= old["accuracy"] - tolerance
    return accurate and new["error_rate"] <= old["error_rate"]


def show(report: dict[str, Any]) -> None:
    for s in (report["primary"], *report["others"]):
        accuracy = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
        print(
            f"  {s['version']} {s['role']:8} {s['weight']}%: {s['scored']} scored, "
            f"accuracy {accuracy}, error rate {s['error_rate']:.1%}, p99 {s['p99_ms']} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per step")
    parser.add_argument("--tolerance", type=float, default=0.02, help="accuracy it may lose")
    parser.add_argument("--minimum", type=int, default=20, help="scored calls a side needs")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with Client() as client:
        owner = str(client.whoami()["name"])
        publish(client, owner)
        model = f"{owner}/{MODEL}"
        for percent in STEPS[:-1]:
            client.set_alias(model, ALIAS, weights={OLD: 100 - percent, NEW: percent})
            print(f"{ALIAS}: {OLD} {100 - percent}%, {NEW} {percent}%")
            started = datetime.now(UTC).isoformat(timespec="seconds")
            verdict = None
            for _ in range(5):  # more traffic until the canary has enough scored calls
                traffic(client, f"{model}/{ALIAS}", args.calls, rng)
                report = client.compare_alias(model, ALIAS, since=started)
                verdict = not_worse(report, args.tolerance, args.minimum)
                if verdict is not None:
                    break
            show(report)
            if not verdict:
                client.set_alias(model, ALIAS, OLD)
                print(f"{NEW} is worse than {OLD} (or could not be judged): rolled back to {OLD}")
                return 1
        client.set_alias(model, ALIAS, NEW)
        print(f"{ALIAS}: {NEW} 100%: promoted on evidence")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
