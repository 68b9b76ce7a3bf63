"""The sync engine: outbox rows in PostgreSQL, claimed by workers, written through connectors.

- ``outbox``: writing work rows (from ingest, manual and batch requests) and kicking workers.
- ``claim``: claiming due rows with ``FOR UPDATE SKIP LOCKED``, leases and the reaper.
- ``engine``: flushing a connection's claimed rows through its connector.
- ``render``: what each capsule event looks like as a CRM activity, note or deal.
- ``retry``: backoff with jitter and the outcome rules of the error taxonomy.
- ``ratelimit``: the per-connection limiter shared by all workers through Redis.
- ``jobs``: the RQ jobs (kick, sweep, batch, manual) and their scheduling.
"""
