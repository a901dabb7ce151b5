"""Protocol adapters: each parses its wire format, calls one service method, renders the answer.

- :mod:`algora.protocols.native`: Algora's management API under ``/api/v1``;
- :mod:`algora.protocols.algorithmia`: Algorithmia's call, algorithm, account and git APIs;
- :mod:`algora.protocols.data`: hosted data under ``/v1/data`` and ``/v1/connector``.

Only the composition root (:mod:`algora.app`) imports this package; adapters never touch the
database (an import contract in CI holds them to it).
"""
