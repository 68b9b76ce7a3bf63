"""Salesforce-style record ids: 15 case-sensitive characters plus a 3-character case-safe suffix.

The first three characters are the object's key prefix (003 Contact, 00Q Lead, …; crm-reference §11.10).
The suffix encodes which of the first 15 characters are upper-case, five at a time, so an 18-character
id survives case-insensitive handling; Salesforce accepts either form wherever an id is expected.
"""

from __future__ import annotations

import itertools
import re
import threading

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The 3-character suffix that turns a 15-character id into its 18-character form."""
    out = []
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        out.append(_SUFFIX[bits])
    return "".join(out)


def normalize_id(value: object) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when ``value`` is not id-shaped."""
    if not isinstance(value, str) or not _SHAPE.match(value):
        return None
    base = value[:15]
    suffix = checksum(base)
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return base + suffix


def key_prefix(record_id: str) -> str:
    return record_id[:3]


class IdFactory:
    """Hands out ids per key prefix: prefix + a two-character pod + a base-62 sequence."""

    def __init__(self, pod: str = "8d") -> None:
        self.pod = pod
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            number = next(self._counter)
        digits = []
        while number:
            number, rest = divmod(number, 62)
            digits.append(_BASE62[rest])
        body = "".join(reversed(digits)).rjust(10, "0")
        id15 = f"{prefix}{self.pod}{body}"
        return id15 + checksum(id15)
