"""Freshsales sandbox: a loopback emulator of one Freshsales (Freshworks CRM) account (crm-reference §7).

    from integrations.sandbox.freshsales import build

    app = build(hourly_limit=1000, per_minute_limit=400)
    server = EmulatorServer(app, tls=LocalCA(directory)).start()
    key = app.issue_api_key()
    requests.get(f"{server.url}/crm/sales/api/selector/owners",
                 headers={"Authorization": f"Token token={key}"})

No Django import anywhere in the package: it runs in tests, ``make run`` and benchmarks.
"""

from __future__ import annotations

from integrations.sandbox.freshsales.app import FreshsalesEmulator, build
from integrations.sandbox.freshsales.probe import FreshsalesProbe
from integrations.sandbox.freshsales.webhooks import Delivery

__all__ = ["Delivery", "FreshsalesEmulator", "FreshsalesProbe", "build"]
