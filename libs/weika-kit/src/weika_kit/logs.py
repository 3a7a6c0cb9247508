"""JSON logs, one event per line, carrying the service, request id and merchant id."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from weika_kit import context


class _ContextFilter(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = getattr(record, "request_id", None) or context.request_id()
        caller = context.current_caller()
        if caller is not None and not getattr(record, "merchant_id", None):
            record.merchant_id = caller.merchant_id
            record.mode = caller.mode
        return True


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601 in UTC
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)
