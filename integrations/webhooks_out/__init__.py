"""Outgoing webhooks for Zapier, Make and any URL (docs/WEBHOOKS.md).

- ``catalogue``: the events, with descriptions and sample payloads (data).
- ``emit``: ``emit(account, event_type, data, idempotency_key=…)``, the one way to send an event.
- ``hooks``: capsule events (ingest hook) and grade crossings (scoring listener) → ``emit``.
- ``payloads``: the ``data`` objects built from our rows (consent-aware prospect data).
- ``subscriptions``: subscribe, rotate, turn off/on, unsubscribe; audited.
- ``signing``: Standard Webhooks secrets and signature headers (``standardwebhooks``).
- ``ssrf``: which URLs may be called, and the checked addresses to call them at.
- ``transport``: one pinned HTTP POST (urllib3, no redirects, no second DNS lookup).
- ``delivery``: one attempt (redirects, verdicts, retry schedule), recording, replay.
- ``claim``, ``jobs``: SKIP LOCKED claiming, leases, and the background jobs.
- ``api``: the REST Hooks API at /api/v1/hooks; ``views``/``urls``/``forms``: the owner pages;
  ``admin``: the ops admin; ``notify``: e-mail to owners when a receiver ends a subscription.
"""
