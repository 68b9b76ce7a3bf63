"""Our idempotency keys inside Freshsales records (no Django import: the sandbox probe reads them).

Notes, tasks and sales activities have no external-id field and custom fields cannot be created
through the API, so their text ends with a key line (``Capsule key: capsule-evt-12``) that the
connector looks for on the contact before writing. Deals carry the conversion key in a deal
custom field an admin adds (``cf_capsule_conversion_id``), found with a filtered search.
"""

from __future__ import annotations

import re

KEY_LINE = "Capsule key: "
CONVERSION_KEY_FIELD = "cf_capsule_conversion_id"
CONVERSION_KEY_LABEL = "Capsule conversion id"
_KEY = re.compile(r"(?:^|\n)Capsule key: (\S+)\s*$")


def with_key_line(text: str, key: str) -> str:
    return f"{text.rstrip()}\n\n{KEY_LINE}{key}"


def key_in(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    match = _KEY.search(text)
    return match.group(1) if match else None
