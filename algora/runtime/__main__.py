"""``python -m algora_runtime --source DIR --entrypoint module:attr`` (see main.py)."""

from __future__ import annotations

from .main import main

if __name__ == "__main__":
    main()
