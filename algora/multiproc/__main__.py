"""``python -m algora.multiproc front``: a front process, started by ``algora serve --workers``."""

from __future__ import annotations

import sys

from algora.multiproc.processes import front_main

if __name__ == "__main__":
    if sys.argv[1:] != ["front"]:
        sys.exit("usage: python -m algora.multiproc front (started by 'algora serve --workers')")
    try:
        sys.exit(front_main())
    except KeyboardInterrupt:
        sys.exit(130)
