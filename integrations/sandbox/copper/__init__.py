"""Copper sandbox: a loopback emulator of one Copper account's Developer API v1 (crm-reference §6).

    from integrations.sandbox.copper import build

    app = build(rate_limit=180)
    server = EmulatorServer(app, tls=LocalCA(directory)).start()
    key, email = app.issue_api_key()
    requests.get(f"{server.url}/developer_api/v1/account", headers={
        "X-PW-AccessToken": key, "X-PW-UserEmail": email, "X-PW-Application": "developer_api",
        "Content-Type": "application/json"})

No Django import anywhere in the package: it runs in tests, ``make run`` and benchmarks.
"""

from __future__ import annotations

from integrations.sandbox.copper.app import Change, CopperEmulator, build
from integrations.sandbox.copper.probe import CopperProbe
from integrations.sandbox.copper.webhooks import Delivery

__all__ = ["Change", "CopperEmulator", "CopperProbe", "Delivery", "build"]
