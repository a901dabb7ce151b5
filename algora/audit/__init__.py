"""The audit log: one typed row per call and per change, hash-chained, never slowing a call.

- :mod:`.log`: :class:`~algora.audit.log.AuditLog`, the gateway's side: events, queries,
  export and verification;
- :mod:`.chain`: the hash chain over rows and the anchor kept outside the database;
- :mod:`.writer`: the writer process beside the gateway, and its client;
- :mod:`.journal`, :mod:`.sinks`: how the writer makes a row durable before it answers
  (a journal in front of SQLite; a commit per batch on PostgreSQL).
"""
