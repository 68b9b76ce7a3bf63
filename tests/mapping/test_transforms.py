"""Every transform, table-driven: what goes in, what comes out, and what is a problem."""

from __future__ import annotations

import datetime as dt

import pytest

from integrations.connector import FieldSchema
from mapping import transforms
from mapping.transforms import TransformError

SHORT = FieldSchema("Title", "Title", "string", max_length=5)
UTC = dt.UTC

CASES = [
    # (transform, value, options, field, expected)
    ("trim", "  Ada   Lovelace ", {}, None, "Ada Lovelace"),
    ("lower", "Ada@Example.COM", {}, None, "ada@example.com"),
    ("upper", "gb", {}, None, "GB"),
    ("lower", ["A", "B"], {}, None, ["a", "b"]),
    ("split_full_name", "Ada Lovelace", {"part": "first"}, None, "Ada"),
    ("split_full_name", "Ada Lovelace", {"part": "last"}, None, "Lovelace"),
    ("split_full_name", "Dr. Juan Carlos van der Berg Jr.", {"part": "first"}, None, "Juan Carlos"),
    ("split_full_name", "Dr. Juan Carlos van der Berg Jr.", {"part": "last"}, None, "van der Berg"),
    ("split_full_name", "Cher", {"part": "first"}, None, "Cher"),
    ("split_full_name", "Cher", {"part": "last"}, None, ""),
    ("phone_e164", "+44 20 7946 0958", {}, None, "+442079460958"),
    ("phone_e164", "(415) 555-2671", {"default_region": "US"}, None, "+14155552671"),
    ("phone_e164", "020 7946 0958", {"default_region": "gb"}, None, "+442079460958"),
    ("date", dt.datetime(2025, 1, 31, 23, 30, tzinfo=UTC), {}, None, "2025-01-31"),
    ("date", "2025-01-31T14:05:00Z", {"format": "epoch_ms"}, None, 1738281600000),
    ("date", dt.date(2025, 1, 31), {"format": "%d/%m/%Y"}, None, "31/01/2025"),
    ("date", 1738332300000, {}, None, "2025-01-31"),
    ("datetime", dt.datetime(2025, 1, 31, 14, 5, tzinfo=UTC), {}, None, "2025-01-31T14:05:00Z"),
    ("datetime", dt.datetime(2025, 1, 31, 14, 5, tzinfo=UTC), {"format": "epoch_ms"}, None, 1738332300000),
    ("datetime", "2025-01-31T15:05:00+01:00", {}, None, "2025-01-31T14:05:00Z"),
    ("datetime", dt.datetime(2025, 1, 31, 14, 5), {}, None, "2025-01-31T14:05:00Z"),  # naive is UTC
    ("datetime", dt.date(2025, 1, 31), {"format": "%Y-%m-%d %H:%M"}, None, "2025-01-31 00:00"),
    ("number", "1,234.50", {}, None, 1234.5),
    ("number", "5", {}, None, 5),
    ("number", 2.345, {"decimals": 2}, None, 2.35),
    ("number", 1_000_000_000_000, {"decimals": 16}, None, 1_000_000_000_000),  # found by hypothesis
    ("number", "123456789012.5", {"decimals": 20}, None, 123456789012.5),
    ("number", True, {}, None, TransformError),
    ("integer", "2.5", {}, None, 3),
    ("integer", 7, {}, None, 7),
    ("integer", "seven", {}, None, TransformError),
    ("boolean", "Yes", {}, None, True),
    ("boolean", "off", {}, None, False),
    ("boolean", 0, {}, None, False),
    ("boolean", True, {"true_value": "Y", "false_value": "N"}, None, "Y"),
    ("boolean", "maybe", {}, None, TransformError),
    ("boolean", True, {"negate": True}, None, False),
    ("boolean", "no", {"negate": True}, None, True),
    ("picklist_map", "enterprise", {"map": {"enterprise": "Hot", "smb": "Warm"}}, None, "Hot"),
    ("picklist_map", " SMB ", {"map": {"enterprise": "Hot", "smb": "Warm"}}, None, "Warm"),
    ("picklist_map", "other", {"map": {"smb": "Warm"}}, None, TransformError),
    ("picklist_map", "other", {"map": {"smb": "Warm"}, "unmapped": "pass_through"}, None, "other"),
    ("picklist_map", ["smb", "enterprise"], {"map": {"enterprise": "Hot", "smb": "Warm"}}, None, ["Warm", "Hot"]),
    ("truncate", "Head of Research", {}, SHORT, "Head "),
    ("truncate", "Head of Research", {"length": 4}, SHORT, "Head"),
    ("truncate", "Head of Research", {}, None, "Head of Research"),
    ("join", ["pricing", "security"], {}, None, "pricing;security"),
    ("join", ["a", "", None, "b"], {"separator": ", "}, None, "a, b"),
    ("join", "single", {}, None, "single"),
    ("phone_e164", "12", {"default_region": "US"}, None, TransformError),
    ("phone_e164", "020 7946 0958", {}, None, TransformError),  # no region and no +
    ("phone_e164", "not a phone", {"default_region": "US"}, None, TransformError),
    ("date", "31st of January", {}, None, TransformError),
]


@pytest.mark.parametrize(("name", "value", "options", "field", "expected"), CASES)
def test_transform(name, value, options, field, expected):
    if expected is TransformError:
        with pytest.raises(TransformError):
            transforms.apply(name, value, options, field)
    else:
        assert transforms.apply(name, value, options, field) == expected


OPTION_CASES = [
    ("split_full_name", {}, "part"),
    ("split_full_name", {"part": "middle"}, "part"),
    ("phone_e164", {"default_region": "XX"}, "region"),
    ("date", {"format": "weird"}, "format"),
    ("datetime", {"format": 3}, "format"),
    ("number", {"decimals": -1}, "decimals"),
    ("picklist_map", {}, "map"),
    ("picklist_map", {"map": {"a": "b"}, "unmapped": "ignore"}, "unmapped"),
    ("truncate", {"length": 0}, "length"),
    ("join", {"separator": ""}, "separator"),
    ("boolean", {"negate": "yes"}, "negate"),
]


@pytest.mark.parametrize(("name", "options", "word"), OPTION_CASES)
def test_bad_options_are_reported_in_words(name, options, word):
    problems = transforms.check_options(name, options)
    assert problems and word in problems[0]


@pytest.mark.parametrize(
    "name", ["split_full_name", "phone_e164", "date", "datetime", "number", "picklist_map", "truncate", "join"]
)
def test_good_options_pass(name):
    good = {
        "split_full_name": {"part": "last"},
        "phone_e164": {"default_region": "DE"},
        "date": {"format": "epoch_ms"},
        "datetime": {"format": "%Y"},
        "number": {"decimals": 2},
        "picklist_map": {"map": {"a": "A"}, "unmapped": "pass_through"},
        "truncate": {"length": 10},
        "join": {"separator": "|"},
    }[name]
    assert transforms.check_options(name, good) == []


INVERSE_CASES = [
    ("date", 1738281600000, {"format": "epoch_ms"}, "2025-01-31"),
    ("datetime", "1738332300000", {"format": "epoch_ms"}, "2025-01-31T14:05:00Z"),
    ("number", "12.50", {}, 12.5),
    ("integer", "12", {}, 12),
    ("boolean", "Y", {"true_value": "Y", "false_value": "N"}, True),
    ("boolean", "false", {}, False),
    ("boolean", "false", {"negate": True}, True),
    ("picklist_map", "Hot", {"map": {"enterprise": "Hot"}}, "enterprise"),
    ("join", "a;b", {}, ["a", "b"]),
]


@pytest.mark.parametrize(("name", "crm_value", "options", "expected"), INVERSE_CASES)
def test_inverse_reads_crm_values_back(name, crm_value, options, expected):
    assert transforms.get(name).inverse(crm_value, options, None) == expected


def test_every_transform_is_documented_and_offered():
    offered = dict(transforms.choices())
    for name, item in transforms.registry().items():
        assert item.doc, f"{name} has no docstring"
        assert name in offered


def test_an_unknown_transform_is_a_lookup_error():
    with pytest.raises(LookupError, match="unknown transform"):
        transforms.get("rot13")
