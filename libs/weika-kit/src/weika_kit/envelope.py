"""The event envelope: CloudEvents Kafka binding (binary mode) headers plus Weika's merchant id and mode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

# CloudEvents attribute -> Kafka header, per the CloudEvents Kafka protocol binding (binary content mode).
_HEADERS = {
    "id": "ce_id",
    "source": "ce_source",
    "type": "ce_type",
    "time": "ce_time",
    "subject": "ce_subject",
    "dataschema": "ce_dataschema",
    "merchant_id": "ce_merchantid",
    "mode": "ce_mode",
    "request_id": "ce_requestid",
}
_REQUIRED = ("id", "source", "type", "time", "subject", "merchant_id", "mode")


class EnvelopeError(ValueError):
    """Headers that do not form a Weika event envelope (a poison message)."""


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    merchant_id: str
    mode: str
    request_id: str = ""
    dataschema: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "type": self.type, "time": self.time.isoformat(),
            "subject": self.subject, "merchant_id": self.merchant_id, "mode": self.mode,
            "request_id": self.request_id, "dataschema": self.dataschema,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        return cls(**{**data, "time": datetime.fromisoformat(data["time"])})

    def headers(self) -> tuple[tuple[str, bytes], ...]:
        values = self.to_dict()
        values["time"] = self.time.isoformat().replace("+00:00", "Z")
        out = [("ce_specversion", SPEC_VERSION.encode()), ("content-type", CONTENT_TYPE.encode())]
        out.extend((header, str(values[attr]).encode()) for attr, header in _HEADERS.items() if values[attr])
        return tuple(out)

    @classmethod
    def from_headers(cls, headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> Envelope:
        raw = {k: v for k, v in headers}
        if raw.get("ce_specversion") != SPEC_VERSION.encode():
            raise EnvelopeError("missing or unsupported ce_specversion header")
        values: dict[str, Any] = {}
        for attr, header in _HEADERS.items():
            value = raw.get(header)
            if value is None:
                if attr in _REQUIRED:
                    raise EnvelopeError(f"missing {header} header")
                values[attr] = ""
                continue
            try:
                values[attr] = value.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {header} is not UTF-8") from exc
        try:
            values["time"] = datetime.fromisoformat(values["time"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise EnvelopeError("ce_time is not an RFC 3339 time") from exc
        return cls(**values)
