"""Facts taken from events and the reports computed over them: plain Python, no database, no gRPC.

A fact is identified by its natural key (order id, coupon id, redemption id, ...), never by the id of the
event that carried it, so a republished event with a new id is still one fact. Reports use each fact's
business time (paid_at, issued_at, ...), never the time it reached us, so replaying the same events in any
order rebuilds the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from weika_analytics.domain import errors


class Fact:
    """What every fact declares so it can be checked the same way: its natural key, its time, its amounts."""

    kind: ClassVar[str]
    key_field: ClassVar[str]
    time_field: ClassVar[str]
    amount_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))

    def validate(self) -> None:
        if not self.key:
            raise errors.MalformedEvent(f"a {self.kind} event must carry {self.key_field}",
                                        details={"fact": self.kind, "field": self.key_field})
        occurred_at = getattr(self, self.time_field)
        if occurred_at is None or occurred_at.tzinfo is None:
            raise errors.MalformedEvent(f"{self.kind} {self.key} has no {self.time_field}",
                                        details={"fact": self.kind, "field": self.time_field, "key": self.key})
        for name in self.amount_fields:
            if getattr(self, name) < 0:
                raise errors.MalformedEvent(f"{self.kind} {self.key} has a negative {name}",
                                            details={"fact": self.kind, "field": name, "key": self.key})


@dataclass(frozen=True)
class PaidLine:
    product_id: str
    product_kind: str
    category_id: str
    quantity: int
    unit_price: int
    line_amount: int


@dataclass(frozen=True)
class PaidOrder(Fact):
    kind: ClassVar[str] = "paid_order"
    key_field: ClassVar[str] = "order_id"
    time_field: ClassVar[str] = "paid_at"
    amount_fields: ClassVar[tuple[str, ...]] = ("total_amount", "discount_amount", "paid_amount")

    order_id: str
    store_id: str
    customer_id: str
    customer_external_id: str
    customer_birth_year: int
    customer_region: str
    total_amount: int
    discount_amount: int
    paid_amount: int
    channel: str
    paid_at: datetime | None
    lines: tuple[PaidLine, ...] = ()


@dataclass(frozen=True)
class IssuedCoupon(Fact):
    kind: ClassVar[str] = "issued_coupon"
    key_field: ClassVar[str] = "coupon_id"
    time_field: ClassVar[str] = "issued_at"
    amount_fields: ClassVar[tuple[str, ...]] = ("face_value", "threshold")

    coupon_id: str
    order_id: str
    product_id: str
    category_id: str
    customer_id: str
    face_value: int
    threshold: int
    valid_from: datetime | None
    valid_until: datetime | None
    issued_at: datetime | None


@dataclass(frozen=True)
class Redemption(Fact):
    kind: ClassVar[str] = "redemption"
    key_field: ClassVar[str] = "redemption_id"
    time_field: ClassVar[str] = "redeemed_at"
    amount_fields: ClassVar[tuple[str, ...]] = ("order_amount", "face_value")

    redemption_id: str
    coupon_id: str
    order_id: str
    product_id: str
    category_id: str
    customer_id: str
    store_id: str
    operator_id: str
    order_amount: int
    face_value: int
    redeemed_at: datetime | None


@dataclass(frozen=True)
class Refund(Fact):
    kind: ClassVar[str] = "refund"
    key_field: ClassVar[str] = "refund_id"
    time_field: ClassVar[str] = "refunded_at"
    amount_fields: ClassVar[tuple[str, ...]] = ("refund_amount",)

    refund_id: str
    order_id: str
    refund_amount: int
    reason: str
    refunded_at: datetime | None


@dataclass(frozen=True)
class RedemptionReversal(Fact):
    kind: ClassVar[str] = "redemption_reversal"
    key_field: ClassVar[str] = "redemption_id"
    time_field: ClassVar[str] = "reversed_at"

    redemption_id: str
    coupon_id: str
    store_id: str
    operator_id: str
    reason: str
    reversed_at: datetime | None


@dataclass(frozen=True)
class VoidedCoupon(Fact):
    kind: ClassVar[str] = "voided_coupon"
    key_field: ClassVar[str] = "coupon_id"
    time_field: ClassVar[str] = "voided_at"

    coupon_id: str
    order_id: str
    reason: str
    voided_at: datetime | None


@dataclass(frozen=True)
class Window:
    """The half-open window [start, end) of business time a report covers; None means unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    def validate(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise errors.InvalidWindow(
                f"the window ends ({self.end.isoformat()}) at or before it starts ({self.start.isoformat()})",
                details={"start_time": self.start.isoformat(), "end_time": self.end.isoformat()})


@dataclass(frozen=True)
class Overview:
    orders_paid: int
    gmv: int
    coupons_issued: int
    coupons_redeemed: int
    refunds: int
    refunded_amount: int
    redemptions_reversed: int
    coupons_voided: int

    @property
    def redemption_rate(self) -> float:
        """Redeemed ÷ issued within the window; 0 when nothing was issued (not a division by zero)."""
        return self.coupons_redeemed / self.coupons_issued if self.coupons_issued else 0.0
