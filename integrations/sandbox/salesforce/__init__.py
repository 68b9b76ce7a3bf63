"""Salesforce sandbox: a loopback emulator of one Salesforce org, faithful to the REST wire format
(crm-reference §1) and usable by the unpatched ``simple-salesforce`` client.

Serving it (simple-salesforce always builds ``https://`` URLs, so the emulator speaks TLS)::

    from integrations.sandbox.salesforce import build

    app = build(ca_dir=tmp_path / "ca", daily_limit=1000)
    server = app.serve()            # EmulatorServer over TLS on 127.0.0.1, a free port
    token = app.issue_token().access_token

    session = requests.Session()
    session.trust_env = False       # REQUESTS_CA_BUNDLE would otherwise override verify (§10.4)
    session.verify = str(app.ca.ca_path)
    sf = Salesforce(instance_url=server.url, session_id=token, session=session, version="59.0")
    ...
    server.stop()

or, with core's pieces directly: ``EmulatorServer(SalesforceEmulator(), tls=LocalCA(directory)).start()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from integrations.sandbox.core import LocalCA
from integrations.sandbox.salesforce.app import SalesforceEmulator
from integrations.sandbox.salesforce.store import Actor, Change

__all__ = ["Actor", "Change", "SalesforceEmulator", "build"]


def build(ca_dir: str | Path | None = None, **options: Any) -> SalesforceEmulator:
    """A Salesforce emulator with ``options`` passed to ``SalesforceEmulator``.

    With ``ca_dir`` the local CA (and server certificate) is written there, so another process can
    trust ``<ca_dir>/sandbox-ca.pem``; ``app.serve()`` then serves with it.
    """
    app = SalesforceEmulator(**options)
    if ca_dir is not None:
        app.ca = LocalCA(Path(ca_dir))
    return app
