"""The Dataverse (Dynamics 365) sandbox emulator; see app.py for the wire facts it follows."""

from integrations.sandbox.dynamics.app import DynamicsEmulator, build

__all__ = ["DynamicsEmulator", "build"]
