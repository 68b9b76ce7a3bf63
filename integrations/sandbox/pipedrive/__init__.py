"""The Pipedrive sandbox CRM (see app.py): ``build`` is its factory for integrations.sandbox.registry."""

from integrations.sandbox.pipedrive.app import OUR_USER_ID, UI_USER_ID, PipedriveEmulator, build
from integrations.sandbox.pipedrive.probe import PipedriveProbe

__all__ = ["OUR_USER_ID", "UI_USER_ID", "PipedriveEmulator", "PipedriveProbe", "build"]
