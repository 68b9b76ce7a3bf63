"""The Close sandbox: a loopback emulator of Close's REST API v1 (crm-reference §8).

See ``app.CloseEmulator``. ``build`` is the factory ``integrations.sandbox.registry`` uses.
"""

from integrations.sandbox.close.app import CloseEmulator, build, endpoint_group
from integrations.sandbox.close.hooks import sign

__all__ = ["CloseEmulator", "build", "endpoint_group", "sign"]
