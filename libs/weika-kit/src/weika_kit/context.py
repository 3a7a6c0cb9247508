"""Who is calling and which request this is: carried in contextvars, gRPC metadata and event headers."""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MODES = ("live", "test")

# gRPC metadata keys (lowercase, as gRPC requires).
MD_REQUEST_ID = "x-request-id"
MD_MERCHANT_ID = "x-weika-merchant-id"
MD_MODE = "x-weika-mode"
MD_STAFF_ID = "x-weika-staff-id"
MD_ROLE = "x-weika-role"
MD_STORE_IDS = "x-weika-store-ids"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal a request acts for. Services enforce ownership with it again."""

    merchant_id: str
    mode: str
    staff_id: str = ""
    role: str = ""
    # Empty means "every store of the merchant" (merchant-wide roles); store roles list theirs.
    store_ids: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def may_act_at_store(self, store_id: str) -> bool:
        return not self.store_ids or store_id in self.store_ids

    def to_metadata(self) -> list[tuple[str, str]]:
        return [
            (MD_MERCHANT_ID, self.merchant_id),
            (MD_MODE, self.mode),
            (MD_STAFF_ID, self.staff_id),
            (MD_ROLE, self.role),
            (MD_STORE_IDS, ",".join(self.store_ids)),
        ]

    @classmethod
    def from_metadata(cls, metadata: Sequence[tuple[str, str | bytes]]) -> Caller | None:
        md = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in metadata}
        merchant_id = md.get(MD_MERCHANT_ID)
        mode = md.get(MD_MODE)
        if not merchant_id or mode not in MODES:
            return None
        stores = tuple(s for s in md.get(MD_STORE_IDS, "").split(",") if s)
        return cls(merchant_id, mode, md.get(MD_STAFF_ID, ""), md.get(MD_ROLE, ""), stores)


_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("weika_request_id", default=None)
_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("weika_caller", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id() -> str | None:
    return _request_id.get()


def current_caller() -> Caller | None:
    return _caller.get()


@contextlib.contextmanager
def bound(*, caller: Caller | None = None, request_id: str | None = None) -> Iterator[None]:
    """Bind a caller and request id for the duration of a request or an event's handling."""
    tokens = []
    if request_id is not None:
        tokens.append((_request_id, _request_id.set(request_id)))
    if caller is not None:
        tokens.append((_caller, _caller.set(caller)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def outgoing_metadata() -> list[tuple[str, str]]:
    """Metadata that carries the current request id and caller to the next service."""
    md: list[tuple[str, str]] = []
    rid = _request_id.get()
    if rid:
        md.append((MD_REQUEST_ID, rid))
    caller = _caller.get()
    if caller is not None:
        md.extend(caller.to_metadata())
    return md


def require_caller() -> Caller:
    """The caller of this request; services refuse to act for nobody."""
    from weika_kit.errors import Unauthenticated

    caller = _caller.get()
    if caller is None:
        raise Unauthenticated("no caller: the request carries no merchant and mode", code="caller_required")
    return caller
