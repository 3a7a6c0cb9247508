"""Small explicit validators for JSON bodies and query strings; the first bad field becomes a 422 naming it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from weika_gateway.errors import InvalidJson, InvalidRequest

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


_DIGITS = re.compile(r"[0-9]{1,18}")


def digits(text: str) -> bool:
    """A plain decimal integer of at most 18 ASCII digits (str.isdigit() also accepts "²" and other digits
    int() refuses, and an unbounded length overflows the databases' 64-bit integers)."""
    return _DIGITS.fullmatch(text) is not None


def invalid(field: str, message: str, reason: str, **extra: Any) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", details={"field": field, "reason": reason, **extra})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object",
                             details={"field": "", "reason": "type", "expected": "object"})
    return data


def fingerprint(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, compact): the same body hashes the same whatever its key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or datetime as aware UTC. A naive datetime is UTC; a bare date is its midnight UTC,
    or the next midnight with `end_of_day` (so `to=2026-06-18` includes the whole of that day)."""
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        start = datetime.combine(day, time(0), tzinfo=UTC)
        return start + timedelta(days=1) if end_of_day else start
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Fields:
    """Typed reads of one JSON object's fields; `path` prefixes field names in errors (`coupon.validity.days`).

    Unknown fields are ignored (clients may send more than we read); `null` counts as absent.
    """

    def __init__(self, data: Any, path: str = ""):
        if not isinstance(data, dict):
            raise invalid(path or "body", "must be an object", "type", expected="object")
        self.data = data
        self.path = path

    def field(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def text(self, name: str, *, max_length: int = 200, choices: Sequence[str] | None = None) -> str:
        """A required, non-blank string, stripped."""
        value = self.optional_text(name, max_length=max_length, choices=choices)
        if value is None:
            raise invalid(self.field(name), "is required", "required")
        return value

    def optional_text(self, name: str, *, max_length: int = 200,
                      choices: Sequence[str] | None = None) -> str | None:
        """A string, stripped; absent, null or blank is None."""
        value = self.data.get(name)
        if value is None:
            return None
        field = self.field(name)
        if not isinstance(value, str):
            raise invalid(field, "must be a string", "type", expected="string")
        value = value.strip()
        if not value:
            return None
        if len(value) > max_length:
            raise invalid(field, f"must be at most {max_length} characters", "length", max_length=max_length)
        if choices is not None and value not in choices:
            raise invalid(field, f"must be one of {', '.join(choices)}", "choice", choices=list(choices))
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
        """A required JSON integer (not a float, a string or a boolean) within [minimum, maximum]."""
        value = self.optional_integer(name, minimum=minimum, maximum=maximum)
        if value is None:
            raise invalid(self.field(name), "is required", "required")
        return value

    def optional_integer(self, name: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        field = self.field(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(field, "must be an integer", "type", expected="integer")
        if not minimum <= value <= maximum:
            raise invalid(field, f"must be between {minimum} and {maximum}", "range",
                          minimum=minimum, maximum=maximum)
        return value

    def object(self, name: str) -> Fields:
        """A required nested object."""
        nested = self.optional_object(name)
        if nested is None:
            raise invalid(self.field(name), "is required", "required")
        return nested

    def optional_object(self, name: str) -> Fields | None:
        value = self.data.get(name)
        return None if value is None else Fields(value, self.field(name))

    def array(self, name: str, *, required: bool = True, min_items: int = 0, max_items: int = 100) -> list[Any]:
        value = self.data.get(name)
        field = self.field(name)
        if value is None:
            if required:
                raise invalid(field, "is required", "required")
            return []
        if not isinstance(value, list):
            raise invalid(field, "must be an array", "type", expected="array")
        if not min_items <= len(value) <= max_items:
            raise invalid(field, f"must have {min_items} to {max_items} items", "length",
                          min_items=min_items, max_items=max_items)
        return value

    def objects(self, name: str, *, min_items: int = 0, max_items: int = 100) -> list[Fields]:
        items = self.array(name, min_items=min_items, max_items=max_items)
        return [Fields(item, f"{self.field(name)}[{i}]") for i, item in enumerate(items)]

    def strings(self, name: str, *, required: bool = False, min_items: int = 0, max_items: int = 100,
                max_length: int = 64) -> list[str]:
        """An array of non-blank strings, stripped, duplicates dropped (first occurrence kept)."""
        items = self.array(name, required=required, min_items=min_items, max_items=max_items)
        result: list[str] = []
        for i, item in enumerate(items):
            field = f"{self.field(name)}[{i}]"
            if not isinstance(item, str) or not item.strip():
                raise invalid(field, "must be a non-blank string", "type", expected="string")
            if len(item.strip()) > max_length:
                raise invalid(field, f"must be at most {max_length} characters", "length", max_length=max_length)
            if item.strip() not in result:
                result.append(item.strip())
        return result

    def instant(self, name: str) -> datetime:
        """A required ISO 8601 datetime (or date), as aware UTC."""
        text = self.text(name, max_length=64)
        try:
            return parse_instant(text)
        except ValueError:
            raise invalid(self.field(name), "must be an ISO 8601 date or datetime", "format") from None


def query_instant(args: Any, name: str, *, end_of_day: bool = False) -> datetime | None:
    """An optional ISO 8601 query parameter, as aware UTC."""
    text = args.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_instant(text, end_of_day=end_of_day)
    except ValueError:
        raise invalid(name, "must be an ISO 8601 date or datetime", "format", value=text[:64]) from None
