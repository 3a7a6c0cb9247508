"""Coupons and the rules of issuing and redeeming them: plain Python, no database, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from weika_redemption.domain import errors

ISSUED, REDEEMED, VOIDED = "issued", "redeemed", "voided"
EXPIRED = "expired"  # shown, never stored: an issued coupon past its validity
# Usage windows are wall-clock hours at the counter. Weika's merchants are in mainland China (one zone, no
# daylight saving), so a fixed UTC+8 offset needs no tz database.
COUNTER_TIMEZONE = timezone(timedelta(hours=8), "UTC+8")
WEEKDAY_NAMES = ("", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def day(moment: datetime) -> str:
    return moment.date().isoformat()


@dataclass(frozen=True)
class UsageWindow:
    """A weekly window in which a coupon may be redeemed: ISO weekdays, hours [start_hour, end_hour) UTC+8."""

    weekdays: tuple[int, ...]
    start_hour: int = 0
    end_hour: int = 24

    def validate(self) -> None:
        if not self.weekdays or any(not 1 <= d <= 7 for d in self.weekdays) or not (
                0 <= self.start_hour < self.end_hour <= 24):
            raise errors.InvalidCouponTerms(
                "a usage window needs weekdays 1..7 and hours 0 <= start < end <= 24",
                details={"weekdays": list(self.weekdays), "start_hour": self.start_hour, "end_hour": self.end_hour})

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(COUNTER_TIMEZONE)
        return local.isoweekday() in self.weekdays and self.start_hour <= local.hour < self.end_hour

    def describe(self) -> str:
        days = ",".join(WEEKDAY_NAMES[d] for d in sorted(self.weekdays))
        return f"{days} {self.start_hour:02d}:00-{self.end_hour:02d}:00"

    def as_json(self) -> dict[str, object]:
        return {"weekdays": list(self.weekdays), "start_hour": self.start_hour, "end_hour": self.end_hour}


@dataclass(frozen=True)
class CouponTerms:
    """The coupon rules an order line was sold with (the snapshot in order-paid)."""

    face_value: int
    threshold: int
    store_ids: tuple[str, ...]
    redeem_methods: tuple[str, ...]
    validity_mode: str
    validity_days: int = 0
    starts_after_days: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    usage_windows: tuple[UsageWindow, ...] = ()
    max_uses: int = 1

    def validate_usage(self) -> None:
        """Usage windows and the number of uses must make sense, or nothing is issued."""
        for window in self.usage_windows:
            window.validate()
        if self.max_uses < 1:
            raise errors.InvalidCouponTerms("max_uses must be 1 or more", details={"max_uses": self.max_uses})

    def validity_window(self, issued_at: datetime) -> tuple[datetime, datetime]:
        """(valid_from, valid_until) of a coupon issued at `issued_at` under these terms."""
        if self.validity_mode == "relative":
            if self.validity_days <= 0 or self.starts_after_days < 0:
                raise errors.InvalidCouponTerms(
                    "relative validity needs a positive number of days and a start offset of 0 or more",
                    details={"validity_days": self.validity_days, "starts_after_days": self.starts_after_days})
            valid_from = issued_at + timedelta(days=self.starts_after_days)
            return valid_from, valid_from + timedelta(days=self.validity_days)
        if self.validity_mode == "fixed":
            if self.starts_at is None or self.ends_at is None or self.ends_at <= self.starts_at:
                raise errors.InvalidCouponTerms("fixed validity needs starts_at before ends_at",
                                                details={"validity_mode": "fixed"})
            return self.starts_at, self.ends_at
        raise errors.InvalidCouponTerms(f"unknown validity mode {self.validity_mode!r}",
                                        details={"validity_mode": self.validity_mode})


@dataclass(frozen=True)
class Coupon:
    id: str
    merchant_id: str
    mode: str
    order_id: str
    product_id: str
    unit_index: int
    category_id: str
    customer_id: str
    status: str
    face_value: int
    threshold: int
    store_ids: tuple[str, ...]
    redeem_methods: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime
    redeemed_at: datetime | None = None
    redeemed_store_id: str | None = None
    redeemed_by: str | None = None
    usage_windows: tuple[UsageWindow, ...] = ()
    uses_total: int = 1
    uses_left: int = 1

    def status_at(self, now: datetime) -> str:
        """The status to show: an issued coupon past its validity reads as expired."""
        if self.status == ISSUED and now > self.valid_until:
            return EXPIRED
        return self.status

    def check_redeemable(self, *, store_id: str, order_amount: int, caller_store_ids: tuple[str, ...],
                         now: datetime, method: str = "code") -> None:
        """Raise the first reason this coupon cannot be redeemed here and now; the order is part of the contract."""
        if self.status == VOIDED:
            raise errors.CouponVoided("Coupon was voided", details={"coupon_id": self.id})
        if self.status == REDEEMED:
            redeemed_at = self.redeemed_at.isoformat() if self.redeemed_at else ""
            where = f" at store {self.redeemed_store_id}" if self.redeemed_store_id else ""
            raise errors.CouponAlreadyRedeemed(
                f"Coupon already redeemed{where} on "
                f"{day(self.redeemed_at) if self.redeemed_at else 'an earlier visit'}",
                details={"coupon_id": self.id, "redeemed_at": redeemed_at, "store_id": self.redeemed_store_id or "",
                         "operator_id": self.redeemed_by or "", "uses_total": self.uses_total})
        if now < self.valid_from:
            raise errors.CouponNotYetValid(f"Coupon is valid from {day(self.valid_from)}",
                                           details={"valid_from": self.valid_from.isoformat()})
        if now > self.valid_until:
            raise errors.CouponExpired(f"Coupon expired on {day(self.valid_until)}",
                                       details={"valid_until": self.valid_until.isoformat()})
        if self.usage_windows and not any(window.contains(now) for window in self.usage_windows):
            hours = "; ".join(window.describe() for window in self.usage_windows)
            raise errors.CouponOutsideUsageHours(
                f"Coupon can be used only {hours} (UTC+8)",
                details={"usage_windows": [window.as_json() for window in self.usage_windows],
                         "now": now.astimezone(COUNTER_TIMEZONE).isoformat()})
        if self.redeem_methods and method not in self.redeem_methods:
            how = {"qr": "by scanning its QR code", "code": "by typing its code"}
            allowed = " or ".join(how.get(m, m) for m in self.redeem_methods)
            raise errors.RedeemMethodNotAllowed(
                f"This coupon can be redeemed only {allowed}",
                details={"method": method, "redeem_methods": list(self.redeem_methods)})
        if self.store_ids and store_id not in self.store_ids:
            raise errors.CouponNotValidAtStore(f"Coupon is not valid at store {store_id}",
                                               details={"store_id": store_id, "store_ids": list(self.store_ids)})
        if caller_store_ids and store_id not in caller_store_ids:
            raise errors.StoreNotPermitted(f"You may not redeem coupons at store {store_id}",
                                           details={"store_id": store_id})
        if self.threshold > 0 and order_amount == 0:
            raise errors.OrderAmountRequired(
                f"This coupon needs the order amount: it applies from {yuan(self.threshold)}",
                details={"threshold": self.threshold})
        if order_amount < self.threshold:
            shortfall = self.threshold - order_amount
            raise errors.CouponThresholdNotMet(
                f"Coupon applies from {yuan(self.threshold)}: {yuan(shortfall)} short",
                details={"threshold": self.threshold, "order_amount": order_amount, "shortfall": shortfall})


@dataclass(frozen=True)
class Redemption:
    id: str
    coupon_id: str
    store_id: str
    operator_id: str
    order_amount: int
    face_value: int
    redeemed_at: datetime
    device_id: str = ""
    reversed_at: datetime | None = None
    reversed_by: str = ""
    reversal_reason: str = ""


@dataclass(frozen=True)
class Attempt:
    id: int
    coupon_id: str | None
    store_id: str
    operator_id: str
    device_id: str
    result: str
    at: datetime
    code_fingerprint: str
