"""Catalog entities and their rules: plain Python, no database, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from weika_catalog.domain import errors

KINDS = ("coupon", "virtual", "physical")
STOCK_MODES = ("limited", "unlimited")
REDEEM_METHODS = ("qr", "code")
VALIDITY_MODES = ("fixed", "relative")
MAX_PRICE = 100_000_000_00  # one hundred million yuan, in fen: anything above is a typo


@dataclass(frozen=True)
class Validity:
    mode: str
    days: int = 0
    starts_after_days: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def validate(self) -> None:
        if self.mode not in VALIDITY_MODES:
            raise errors.InvalidProduct(f"validity mode must be one of {', '.join(VALIDITY_MODES)}",
                                        details={"field": "coupon.validity.mode"})
        if self.mode == "relative":
            if self.days <= 0:
                raise errors.InvalidProduct("relative validity needs a positive number of days",
                                            details={"field": "coupon.validity.days"})
            if self.starts_after_days < 0:
                raise errors.InvalidProduct("starts_after_days cannot be negative",
                                            details={"field": "coupon.validity.starts_after_days"})
        else:
            if self.starts_at is None or self.ends_at is None:
                raise errors.InvalidProduct("fixed validity needs starts_at and ends_at",
                                            details={"field": "coupon.validity"})
            if self.ends_at <= self.starts_at:
                raise errors.ValidityEndsBeforeStart(
                    f"validity ends ({self.ends_at.isoformat()}) before it starts ({self.starts_at.isoformat()})",
                    details={"starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat()})


@dataclass(frozen=True)
class CouponRule:
    face_value: int
    threshold: int
    store_ids: tuple[str, ...]
    redeem_methods: tuple[str, ...]
    validity: Validity

    def validate(self, known_store_ids: set[str] | None = None) -> None:
        if self.face_value <= 0:
            raise errors.InvalidProduct("face_value must be a positive amount in fen",
                                        details={"field": "coupon.face_value"})
        if self.threshold < 0:
            raise errors.InvalidProduct("threshold cannot be negative", details={"field": "coupon.threshold"})
        if self.threshold and self.face_value > self.threshold:
            raise errors.FaceValueExceedsThreshold(
                f"a coupon worth {self.face_value} fen cannot apply from {self.threshold} fen",
                details={"face_value": self.face_value, "threshold": self.threshold})
        if not self.redeem_methods or any(m not in REDEEM_METHODS for m in self.redeem_methods):
            raise errors.InvalidProduct(f"redeem_methods must be a non-empty subset of {list(REDEEM_METHODS)}",
                                        details={"field": "coupon.redeem_methods"})
        self.validity.validate()


@dataclass
class Product:
    id: str
    merchant_id: str
    mode: str
    kind: str
    name: str
    description: str
    category_id: str
    price: int
    on_shelf: bool
    stock_mode: str
    available: int | None  # None when unlimited
    reserved: int
    coupon: CouponRule | None
    created_at: datetime
    updated_at: datetime
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise errors.InvalidProduct(f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"})
        if not self.name.strip() or len(self.name) > 200:
            raise errors.InvalidProduct("name must be 1 to 200 characters", details={"field": "name"})
        if not 0 <= self.price <= MAX_PRICE:
            raise errors.InvalidProduct("price must be between 0 and 10000000000 fen", details={"field": "price"})
        if self.stock_mode not in STOCK_MODES:
            raise errors.InvalidProduct("stock.mode must be limited or unlimited", details={"field": "stock.mode"})
        if self.stock_mode == "limited" and (self.available is None or self.available < 0):
            raise errors.InvalidProduct("limited stock needs a quantity of 0 or more",
                                        details={"field": "stock.quantity"})
        if self.kind == "coupon" and self.coupon is None:
            raise errors.InvalidProduct("a coupon product needs its coupon rule", details={"field": "coupon"})
        if self.kind != "coupon" and self.coupon is not None:
            raise errors.InvalidProduct("only coupon products carry a coupon rule", details={"field": "coupon"})
