"""Transforms: named functions that turn a capsule value into what a CRM field accepts.

Extension point. A transform is a function ``(value, options, field) -> value`` registered with
:func:`transform`; ``options`` is the row's ``transform_options`` dict and ``field`` the target's
:class:`~integrations.connector.FieldSchema` (or ``None`` when unknown). It raises
:class:`TransformError` for a value it cannot convert: that becomes a per-field problem in the
payload, never a crash, and the field is left out of that record's payload.

Each registration also says which source types it accepts (``None``: any), what type comes out
(``None``: the input's), how to check its options when a mapping is saved, and optionally the
inverse used for values coming back from the CRM (bi-directional sync)::

    @transform("slug", label="Slug", accepts={"string"}, output="string")
    def slug(value, options, field):
        '''Lower case, spaces to dashes.'''
        return str(value).strip().lower().replace(" ", "-")

Empty values (None, "", []) never reach a transform: the row's default is used instead.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import phonenumbers
from nameparser import HumanName

from integrations.connector import FieldSchema

TransformFunc = Callable[[Any, Mapping[str, Any], FieldSchema | None], Any]
OptionsCheck = Callable[[Mapping[str, Any]], list[str]]


class TransformError(ValueError):
    """A value this transform cannot convert (reported as a problem for that record)."""


@dataclass(frozen=True)
class Transform:
    name: str
    label: str
    func: TransformFunc
    accepts: frozenset[str] | None  # source types it takes; None: any
    output: str | None  # the type it produces; None: the input's type
    check_options: OptionsCheck | None = None
    inverse: TransformFunc | None = None  # CRM value -> capsule value, for inbound sync

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip()

    def output_type(self, input_type: str) -> str:
        return self.output or input_type


_REGISTRY: dict[str, Transform] = {}


def transform(
    name: str,
    *,
    label: str,
    accepts: Collection[str] | None = None,
    output: str | None = None,
    check_options: OptionsCheck | None = None,
) -> Callable[[TransformFunc], TransformFunc]:
    """Register the decorated function as the transform ``name``."""

    def register(func: TransformFunc) -> TransformFunc:
        _REGISTRY[name] = Transform(
            name=name,
            label=label,
            func=func,
            accepts=frozenset(accepts) if accepts is not None else None,
            output=output,
            check_options=check_options,
        )
        return func

    return register


def inverse_of(name: str) -> Callable[[TransformFunc], TransformFunc]:
    """Register the decorated function as the inverse of transform ``name``."""

    def register(func: TransformFunc) -> TransformFunc:
        current = _REGISTRY[name]
        _REGISTRY[name] = Transform(**{**current.__dict__, "inverse": func})
        return func

    return register


def get(name: str) -> Transform:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LookupError(f"unknown transform {name!r}") from None


def registry() -> dict[str, Transform]:
    return dict(_REGISTRY)


def choices() -> list[tuple[str, str]]:
    return [("", "None")] + [(item.name, item.label) for item in _REGISTRY.values()]


def apply(name: str, value: Any, options: Mapping[str, Any] | None, field: FieldSchema | None) -> Any:
    """Run transform ``name``; elements of a list go through one by one, except for transforms
    that take lists themselves (join)."""
    item = get(name)
    options = options or {}
    if isinstance(value, list | tuple) and (item.accepts is None or "list" not in item.accepts):
        return [item.func(element, options, field) for element in value]
    return item.func(value, options, field)


def check_options(name: str, options: Mapping[str, Any] | None) -> list[str]:
    """Problems with a row's transform options, in words."""
    item = get(name)
    if item.check_options is None:
        return []
    return item.check_options(options or {})


# -- text ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@transform("trim", label="Trim spaces", output=None)
def trim(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """Remove leading and trailing whitespace and collapse inner runs of spaces to one."""
    return " ".join(_text(value).split())


@transform("lower", label="Lower case")
def lower(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """Lower-case the text (e-mail addresses, tags)."""
    return _text(value).lower()


@transform("upper", label="Upper case")
def upper(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """Upper-case the text (country or currency codes)."""
    return _text(value).upper()


def _check_split(options: Mapping[str, Any]) -> list[str]:
    if options.get("part") not in ("first", "last"):
        return ["split full name needs the option part: first or last"]
    return []


@transform(
    "split_full_name",
    label="Full name → first or last name",
    accepts={"string", "text"},
    output="string",
    check_options=_check_split,
)
def split_full_name(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> str:
    """One part of a full name, parsed with nameparser: ``part: first`` gives the given name (with
    any middle names), ``part: last`` the family name with its particles ("van der Berg").
    Titles and suffixes (Dr., Jr.) are dropped. A single word is a first name."""
    name = HumanName(_text(value))
    if options.get("part") == "last":
        return name.last
    return " ".join(part for part in (name.first, name.middle) if part)


@transform("truncate", label="Cut to length", output=None, check_options=lambda o: _check_positive_int(o, "length"))
def truncate(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """Cut text to ``length`` characters, or to the CRM field's maximum length when no length is
    given (the payload also cuts over-long text automatically, but reports it as a problem;
    this transform says the cut is intended)."""
    limit = options.get("length") or (field.max_length if field is not None else None)
    text = _text(value)
    return text[: int(limit)] if limit else text


def _check_positive_int(options: Mapping[str, Any], name: str) -> list[str]:
    if name in options and options[name] not in (None, ""):
        try:
            if int(options[name]) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            return [f"the option {name} must be a whole number above 0"]
    return []


def _check_join(options: Mapping[str, Any]) -> list[str]:
    separator = options.get("separator", ";")
    return [] if isinstance(separator, str) and separator else ["the option separator must be some text, e.g. ;"]


@transform("join", label="Join a list", accepts={"list", "string", "text"}, output="string", check_options=_check_join)
def join(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> str:
    """A list as one text, ``;``-separated by default: the format of HubSpot multiple-checkbox
    properties and Salesforce multi-select picklists. Text passes through."""
    if isinstance(value, list | tuple):
        return str(options.get("separator", ";")).join(_text(item) for item in value if item not in (None, ""))
    return _text(value)


# -- phone ---------------------------------------------------------------------------------------


def _check_phone(options: Mapping[str, Any]) -> list[str]:
    region = options.get("default_region")
    if region and (not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS):
        return [f"default region {region!r} is not a two-letter country code phonenumbers knows (e.g. US, GB, DE)"]
    return []


@transform(
    "phone_e164",
    label="Phone → E.164",
    accepts={"phone", "string", "text", "integer", "number"},
    output="phone",
    check_options=_check_phone,
)
def phone_e164(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> str:
    """A phone number in E.164 (``+14155550123``), parsed with phonenumbers. Numbers written
    without a country code are read in ``default_region`` (two-letter code, e.g. ``GB``); without
    that option they must start with ``+``. An invalid number is a problem, not a guess."""
    region = options.get("default_region")
    region = region.upper() if isinstance(region, str) and region else None
    try:
        number = phonenumbers.parse(_text(value), region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (no default region is set, so it must start with +)"
        raise TransformError(f"“{value}” is not a phone number{hint}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise TransformError(f"“{value}” is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# -- dates ---------------------------------------------------------------------------------------

EPOCH_MS = "epoch_ms"
ISO = "iso"


def _check_format(options: Mapping[str, Any]) -> list[str]:
    fmt = options.get("format", ISO)
    if fmt in (ISO, EPOCH_MS) or (isinstance(fmt, str) and "%" in fmt):
        return []
    return [f"format must be iso, epoch_ms or a strftime pattern such as %d/%m/%Y (got {fmt!r})"]


def _from_epoch_ms(value: float) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):  # out of the representable range, or not a number
        raise TransformError(f"“{value}” is not a time in milliseconds since 1970") from None


def _as_datetime(value: Any) -> dt.datetime:
    """A timezone-aware datetime from a datetime, a date (midnight UTC), ISO text or epoch ms."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch_ms(value)
    text = _text(value).strip()
    if text.isdigit():
        return _from_epoch_ms(int(text))
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TransformError(f"“{value}” is not a date or time (expected ISO 8601, e.g. 2025-01-31)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@transform(
    "date", label="Date", accepts={"date", "datetime", "string", "integer"}, output="date", check_options=_check_format
)
def date(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """The calendar day (in UTC) as ``format``: ``iso`` (2025-01-31, Salesforce date fields),
    ``epoch_ms`` (milliseconds of that day's midnight UTC — what HubSpot date properties require,
    https://developers.hubspot.com/docs/api/crm/properties#date-and-datetime-formats), or a
    strftime pattern."""
    day = _as_datetime(value).astimezone(dt.UTC).date()
    fmt = options.get("format", ISO)
    if fmt == EPOCH_MS:
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    if fmt == ISO:
        return day.isoformat()
    return day.strftime(fmt)


@transform(
    "datetime",
    label="Date and time",
    accepts={"date", "datetime", "string", "integer"},
    output="datetime",
    check_options=_check_format,
)
def datetime_(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """The instant as ``format``: ``iso`` (UTC, ``2025-01-31T14:05:00Z``, Salesforce and HubSpot
    both accept it), ``epoch_ms`` (HubSpot's native datetime), or a strftime pattern (UTC)."""
    moment = _as_datetime(value).astimezone(dt.UTC)
    fmt = options.get("format", ISO)
    if fmt == EPOCH_MS:
        return int(moment.timestamp() * 1000)
    if fmt == ISO:
        return moment.isoformat().replace("+00:00", "Z")
    return moment.strftime(fmt)


@inverse_of("date")
def _date_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> str:
    return _as_datetime(value).astimezone(dt.UTC).date().isoformat()


@inverse_of("datetime")
def _datetime_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> str:
    return _as_datetime(value).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# -- numbers and booleans ------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TransformError(f"{value} is a yes/no value, not a number")
    text = _text(value).strip().replace(",", "") if isinstance(value, str) else value
    try:
        number = Decimal(str(text))
    except InvalidOperation:
        raise TransformError(f"“{value}” is not a number") from None
    if not number.is_finite():
        raise TransformError(f"“{value}” is not a finite number")
    return number


def _check_decimals(options: Mapping[str, Any]) -> list[str]:
    if options.get("decimals") in (None, ""):
        return []
    try:
        if int(options["decimals"]) < 0:
            raise ValueError
    except (TypeError, ValueError):
        return ["the option decimals must be a whole number, 0 or more"]
    return []


@transform(
    "number",
    label="Number",
    accepts={"string", "text", "number", "integer", "boolean"},
    output="number",
    check_options=_check_decimals,
)
def number(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> float | int:
    """A number from text ("1,234.5" reads as 1234.5); ``decimals`` rounds (half up). Whole
    numbers come out as integers, so 5 and "5" give the same payload."""
    amount = _decimal(value)
    if options.get("decimals") not in (None, ""):
        decimals = int(options["decimals"])
        # Enough significant digits for the whole part and every decimal asked for: the default
        # 28 cannot hold 1,000,000,000,000 to 16 places, and quantize then refuses.
        with localcontext() as context:
            context.prec = max(context.prec, amount.adjusted() + decimals + 3)
            try:
                amount = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
            except InvalidOperation:
                raise TransformError(f"“{value}” cannot be rounded to {decimals} decimals") from None
    if amount == amount.to_integral_value():
        return int(amount)
    result = float(amount)
    if math.isinf(result):
        raise TransformError(f"“{value}” is too large")
    return result


@transform("integer", label="Whole number", accepts={"string", "text", "number", "integer"}, output="integer")
def integer(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> int:
    """A whole number, rounded half up (2.5 → 3)."""
    return int(_decimal(value).to_integral_value(rounding=ROUND_HALF_UP))


@inverse_of("number")
def _number_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> float | int:
    return number(value, {}, field)


@inverse_of("integer")
def _integer_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> int:
    return integer(value, {}, field)


TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on", "t"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "off", "f"})


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    word = _text(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise TransformError(f"“{value}” is not a yes/no value (use true/false, yes/no or 1/0)")


def _check_boolean(options: Mapping[str, Any]) -> list[str]:
    if "negate" in options and not isinstance(options["negate"], bool):
        return ["the option negate must be true or false"]
    return []


@transform(
    "boolean",
    label="Yes / no",
    accepts={"boolean", "string", "text", "integer", "number"},
    output="boolean",
    check_options=_check_boolean,
)
def boolean(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """True or false from true/false, yes/no, on/off, 1/0 (any case); ``negate: true`` flips it
    (consent given → "opted out of e-mail" false). With ``true_value`` and ``false_value`` the
    result is that text instead (e.g. a picklist's "Yes"/"No")."""
    truth = _truth(value) != bool(options.get("negate", False))
    if "true_value" in options or "false_value" in options:
        return options.get("true_value", "true") if truth else options.get("false_value", "false")
    return truth


@inverse_of("boolean")
def _boolean_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> bool:
    if "true_value" in options and value == options["true_value"]:
        truth = True
    elif "false_value" in options and value == options["false_value"]:
        truth = False
    else:
        truth = _truth(value)
    return truth != bool(options.get("negate", False))


# -- picklists -----------------------------------------------------------------------------------

UNMAPPED_PROBLEM, UNMAPPED_PASS = "problem", "pass_through"


def _check_picklist_map(options: Mapping[str, Any]) -> list[str]:
    problems = []
    mapping = options.get("map")
    if not isinstance(mapping, Mapping) or not mapping:
        problems.append("picklist map needs the option map: {capsule value: CRM value, …}")
    elif not all(isinstance(target, str | int | float | bool) for target in mapping.values()):
        problems.append("every CRM value in the picklist map must be plain text or a number")
    if options.get("unmapped", UNMAPPED_PROBLEM) not in (UNMAPPED_PROBLEM, UNMAPPED_PASS):
        problems.append("the option unmapped must be problem or pass_through")
    return problems


def _lookup(mapping: Mapping[str, Any], value: Any) -> tuple[bool, Any]:
    key = _text(value)
    if key in mapping:
        return True, mapping[key]
    folded = {str(k).strip().casefold(): v for k, v in mapping.items()}
    if key.strip().casefold() in folded:
        return True, folded[key.strip().casefold()]
    return False, None


@transform("picklist_map", label="Picklist value map", output="string", check_options=_check_picklist_map)
def picklist_map(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    """Translate capsule values into the CRM's picklist values with ``map`` (matched exactly,
    then ignoring case and surrounding spaces). A value not in the map is a problem, or — with
    ``unmapped: pass_through`` — sent unchanged (the CRM's picklist check still applies)."""
    found, mapped = _lookup(options.get("map") or {}, value)
    if found:
        return mapped
    if options.get("unmapped", UNMAPPED_PROBLEM) == UNMAPPED_PASS:
        return value
    raise TransformError(f"“{value}” has no entry in the picklist map")


@inverse_of("picklist_map")
def _picklist_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> Any:
    reverse = {str(target): source for source, target in (options.get("map") or {}).items()}
    return reverse.get(_text(value), value)


@inverse_of("join")
def _join_back(value: Any, options: Mapping[str, Any], field: FieldSchema | None) -> list[str]:
    if isinstance(value, list | tuple):
        return [_text(item) for item in value]
    return [part for part in _text(value).split(str(options.get("separator", ";"))) if part]
