"""A threshold classifier: "high" above 0.6, else "low" (its threshold is a little off)."""

THRESHOLD = 0.6


def apply(input: dict) -> dict:
    return {"label": "high" if float(input["x"]) > THRESHOLD else "low"}
