"""A threshold classifier: "high" above 0.5, else "low" (version 2: the threshold the data says)."""

THRESHOLD = 0.5


def apply(input: dict) -> dict:
    return {"label": "high" if float(input["x"]) > THRESHOLD else "low"}
