"""The sandbox CRMs of `make run` and the browser tests: which emulator, on which port, how served.

Each sandbox registers one OAuth app whose redirect URI is this service's callback, so an owner
can connect it exactly as a real CRM: Connect → consent page → back to the settings page.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from integrations.sandbox.core import EmulatorServer, LocalCA


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    factory: str  # "module:function" returning an EmulatorApp
    port: int
    tls: bool  # Salesforce clients only speak https (crm-reference.md §10.1)


SANDBOXES: tuple[SandboxSpec, ...] = (
    # TLS for every sandbox: OAuth clients (oauthlib) refuse plain-http authorize URLs.
    SandboxSpec("hubspot", "integrations.sandbox.hubspot:build", 8101, tls=True),
    SandboxSpec("salesforce", "integrations.sandbox.salesforce:build", 8102, tls=True),
    SandboxSpec("pipedrive", "integrations.sandbox.pipedrive:build", 8103, tls=True),
    SandboxSpec("zoho", "integrations.sandbox.zoho:build", 8104, tls=True),
    SandboxSpec("close", "integrations.sandbox.close:build", 8108, tls=True),
    SandboxSpec("copper", "integrations.sandbox.copper:build", 8106, tls=True),
    SandboxSpec("freshsales", "integrations.sandbox.freshsales:build", 8107, tls=True),
    SandboxSpec("dynamics", "integrations.sandbox.dynamics:build", 8105, tls=True),
)


def client_credentials(name: str) -> tuple[str, str]:
    """The sandbox OAuth app's id and secret. Not secret: sandboxes run on loopback only."""
    return f"sandbox-{name}-client", f"sandbox-{name}-secret"


def base_url(spec: SandboxSpec, host: str = "127.0.0.1") -> str:
    return f"{'https' if spec.tls else 'http'}://{host}:{spec.port}"


def env_lines(public_base_url: str, directory: Path) -> list[str]:
    """`export` lines that point this service at the sandboxes (read by crmsync.settings)."""
    lines = [
        "export SANDBOX_ENABLED=true",
        f"export SANDBOX_DIR={directory}",
        f"export CRM_CA_BUNDLE={directory / 'sandbox-ca.pem'}",
    ]
    for spec in SANDBOXES:
        client_id, client_secret = client_credentials(spec.name)
        upper = spec.name.upper()
        lines += [
            f"export {upper}_API_URL={base_url(spec)}",
            f"export {upper}_OAUTH_URL={base_url(spec)}",
            f"export {upper}_CLIENT_ID={client_id}",
            f"export {upper}_CLIENT_SECRET={client_secret}",
        ]
    return lines


def start_sandboxes(public_base_url: str, directory: Path, *, port_offset: int = 0) -> dict[str, EmulatorServer]:
    """Start every sandbox on its port (plus ``port_offset``); returns the running servers."""
    ca = LocalCA(directory) if any(spec.tls for spec in SANDBOXES) else None
    servers = {}
    for spec in SANDBOXES:
        module_name, function = spec.factory.split(":")
        client_id, client_secret = client_credentials(spec.name)
        app = getattr(import_module(module_name), function)(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=[f"{public_base_url.rstrip('/')}/oauth/callback/{spec.name}/"],
        )
        servers[spec.name] = EmulatorServer(app, port=spec.port + port_offset, tls=ca if spec.tls else None).start()
    return servers
