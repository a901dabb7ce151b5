"""Hello world, Algorithmia's classic first algorithm.

A function model: Algora calls ``apply`` with the request's text (a ``str``), and a ``str``
result goes back to the caller as text.
"""


def apply(input: str) -> str:
    return f"Hello {input}"
