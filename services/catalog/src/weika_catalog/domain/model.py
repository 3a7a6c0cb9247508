"""Catalog entities and their rules: plain Python, no database, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from weika_catalog.domain import errors

KINDS = ("coupon", "virtual", "physical")
STOCK_MODES = ("limited", "unlimited")
REDEEM_METHODS = ("qr", "code")
VALIDITY_MODES = ("fixed", "relative")
DELIVERY_MODES = ("card_key", "top_up")
FULL_PRICE_RATE = 10_000  # discount rates are basis points of the price paid: 8500 = 8.5折
MAX_COUPON_USES = 100
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
class UsageWindow:
    """A weekly window in which a coupon may be redeemed: ISO weekdays, hours [start_hour, end_hour)."""

    weekdays: tuple[int, ...]
    start_hour: int = 0
    end_hour: int = 24

    def validate(self) -> None:
        if not self.weekdays or any(not 1 <= d <= 7 for d in self.weekdays) or len(set(self.weekdays)) != len(
                self.weekdays):
            raise errors.InvalidUsageWindow("weekdays must be distinct numbers from 1 (Monday) to 7 (Sunday)",
                                            details={"field": "coupon.usage_windows.weekdays"})
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise errors.InvalidUsageWindow(
                f"a usage window needs 0 <= start_hour < end_hour <= 24 (got {self.start_hour} to {self.end_hour})",
                details={"field": "coupon.usage_windows", "start_hour": self.start_hour,
                         "end_hour": self.end_hour})


@dataclass(frozen=True)
class CouponRule:
    """满减 (face_value off from threshold) or 折扣 (discount_rate, optionally capped at max_discount)."""

    face_value: int
    threshold: int
    store_ids: tuple[str, ...]
    redeem_methods: tuple[str, ...]
    validity: Validity
    discount_rate: int = 0
    max_discount: int = 0
    usage_windows: tuple[UsageWindow, ...] = ()
    max_uses: int = 1  # 次卡: a coupon redeemable this many times

    def validate(self) -> None:
        if not 1 <= self.max_uses <= MAX_COUPON_USES:
            raise errors.InvalidProduct(f"max_uses must be 1 to {MAX_COUPON_USES}", details={"field": "coupon.max_uses"})
        if self.discount_rate:
            if self.face_value:
                raise errors.InvalidProduct("a coupon has a face value or a discount rate, not both",
                                            details={"field": "coupon.discount_rate"})
            if not 0 < self.discount_rate < FULL_PRICE_RATE:
                raise errors.DiscountRateOutOfRange(
                    f"discount_rate is in basis points of the price paid, 1 to 9999 (8500 = 8.5折); "
                    f"got {self.discount_rate}", details={"field": "coupon.discount_rate",
                                                          "discount_rate": self.discount_rate})
            if self.max_discount < 0:
                raise errors.InvalidProduct("max_discount cannot be negative", details={"field": "coupon.max_discount"})
        else:
            if self.face_value <= 0:
                raise errors.InvalidProduct("face_value must be a positive amount in fen (or give a discount_rate)",
                                            details={"field": "coupon.face_value"})
            if self.max_discount:
                raise errors.InvalidProduct("max_discount caps a discount-rate coupon only",
                                            details={"field": "coupon.max_discount"})
        if self.threshold < 0:
            raise errors.InvalidProduct("threshold cannot be negative", details={"field": "coupon.threshold"})
        if self.threshold and self.face_value > self.threshold:
            raise errors.FaceValueExceedsThreshold(
                f"a coupon worth {self.face_value} fen cannot apply from {self.threshold} fen",
                details={"face_value": self.face_value, "threshold": self.threshold})
        if not self.redeem_methods or any(m not in REDEEM_METHODS for m in self.redeem_methods):
            raise errors.InvalidProduct(f"redeem_methods must be a non-empty subset of {list(REDEEM_METHODS)}",
                                        details={"field": "coupon.redeem_methods"})
        for window in self.usage_windows:
            window.validate()
        self.validity.validate()


@dataclass(frozen=True)
class VirtualSpec:
    delivery: str  # card_key | top_up
    low_stock_threshold: int = 0
    supplier_sku: str = ""

    def validate(self) -> None:
        if self.delivery not in DELIVERY_MODES:
            raise errors.InvalidProduct(f"virtual.delivery must be one of {', '.join(DELIVERY_MODES)}",
                                        details={"field": "virtual.delivery"})
        if self.low_stock_threshold < 0:
            raise errors.InvalidProduct("low_stock_threshold cannot be negative",
                                        details={"field": "virtual.low_stock_threshold"})
        if self.delivery == "top_up" and not self.supplier_sku.strip():
            raise errors.InvalidProduct("a top-up product needs the supplier's sku",
                                        details={"field": "virtual.supplier_sku"})


@dataclass(frozen=True)
class PhysicalSpec:
    weight_grams: int = 0
    spec: str = ""

    def validate(self) -> None:
        if self.weight_grams < 0:
            raise errors.InvalidProduct("weight_grams cannot be negative", details={"field": "physical.weight_grams"})
        if len(self.spec) > 200:
            raise errors.InvalidProduct("spec is at most 200 characters", details={"field": "physical.spec"})


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
    virtual: VirtualSpec | None = None
    physical: PhysicalSpec | None = None
    purchase_limit: int = 0
    # Read only: card keys loaded and not allocated (virtual card-key products).
    card_keys_available: int = 0

    @property
    def delivers_card_keys(self) -> bool:
        return self.virtual is not None and self.virtual.delivery == "card_key"

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
        if self.kind == "virtual" and self.virtual is None:
            raise errors.InvalidProduct("a virtual product needs its delivery (card_key or top_up)",
                                        details={"field": "virtual"})
        if self.kind != "virtual" and self.virtual is not None:
            raise errors.InvalidProduct("only virtual products carry virtual fields", details={"field": "virtual"})
        if self.kind != "physical" and self.physical is not None:
            raise errors.InvalidProduct("only physical products carry physical fields", details={"field": "physical"})
        if self.purchase_limit < 0:
            raise errors.InvalidProduct("purchase_limit cannot be negative (0 = no limit)",
                                        details={"field": "purchase_limit"})
        for part in (self.coupon, self.virtual, self.physical):
            if part is not None:
                part.validate()
