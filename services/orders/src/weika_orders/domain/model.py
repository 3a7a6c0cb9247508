"""Orders, their lines, customers and the order status machine: plain Python, no database, no gRPC."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from weika_orders.domain import errors

# The status machine. `creating` and `failed` are internal: an order is `creating` while its stock and
# price are being fixed (a retry with the same idempotency key resumes it), `failed` when it was abandoned.
CREATING = "creating"
PENDING_PAYMENT = "pending_payment"
PAID = "paid"
CANCELLED = "cancelled"
FAILED = "failed"
DELIVERED = "delivered"
AWAITING_SHIPMENT = "awaiting_shipment"
SHIPPED = "shipped"
COMPLETED = "completed"
REFUND_REQUESTED = "refund_requested"
REFUNDED = "refunded"

TRANSITIONS: dict[str, tuple[str, ...]] = {
    CREATING: (PENDING_PAYMENT, FAILED),
    PENDING_PAYMENT: (PAID, CANCELLED),
    PAID: (DELIVERED, AWAITING_SHIPMENT, REFUND_REQUESTED),
    AWAITING_SHIPMENT: (SHIPPED, REFUND_REQUESTED),
    SHIPPED: (COMPLETED,),
    DELIVERED: (COMPLETED, REFUND_REQUESTED),
    COMPLETED: (REFUND_REQUESTED,),
    # Back where it was after a partial (or refused) refund; refunded once nothing is left to refund.
    REFUND_REQUESTED: (REFUNDED, PAID, AWAITING_SHIPMENT, DELIVERED, COMPLETED),
}
REFUNDABLE_STATUSES = (PAID, AWAITING_SHIPMENT, DELIVERED, COMPLETED)
# What the status tabs list (internal `creating` and `failed` are never shown in lists or counts).
LISTED_STATUSES = (PENDING_PAYMENT, PAID, DELIVERED, AWAITING_SHIPMENT, SHIPPED, COMPLETED, CANCELLED,
                   REFUND_REQUESTED, REFUNDED)

SIMULATED_CHANNEL = "simulated"
# Paid directly by PayOrder. The provider channels (wechat, alipay: domain/payment_channels.py) are paid by
# the provider's verified notification instead.
PAYMENT_CHANNELS = (SIMULATED_CHANNEL,)

MAX_ITEMS = 100
MAX_QUANTITY = 999
MAX_IDEMPOTENCY_KEY = 128
MAX_EXTERNAL_ID = 64
MIN_BIRTH_YEAR = 1900
_PHONE = re.compile(r"^\+?[0-9]{5,15}$")
_REGION = re.compile(r"^[A-Za-z0-9-]{1,16}$")
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def may_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, ())


def transition_refused(current: str, target: str) -> errors.InvalidOrderTransition:
    return errors.InvalidOrderTransition(
        f"an order that is {current} cannot become {target}",
        details={"current_status": current, "target_status": target})


def normalize_phone(raw: str) -> str | None:
    """Digits (an optional leading +), separators dropped; None when empty."""
    phone = re.sub(r"[\s-]", "", raw)
    if not phone:
        return None
    if not _PHONE.match(phone):
        raise errors.InvalidPhone("phone must be 5 to 15 digits, optionally starting with +",
                                  details={"field": "customer.phone"})
    return phone


def mask_phone(phone: str | None) -> str:
    """138****0000: enough to recognise a number at the counter, not enough to call it."""
    if not phone:
        return ""
    if len(phone) < 8:
        return "*" * (len(phone) - 2) + phone[-2:]
    return phone[:3] + "****" + phone[-4:]


MAX_TAGS = 20
MAX_TAG_LENGTH = 32


def normalize_tags(raw: list[str]) -> tuple[str, ...]:
    """A customer's tags: trimmed, duplicates merged (first spelling kept), at most 20 of 1..32 characters."""
    tags: list[str] = []
    for index, tag in enumerate(raw):
        tag = tag.strip()
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            raise errors.InvalidCustomerTags(f"each tag must be 1 to {MAX_TAG_LENGTH} characters",
                                             details={"field": f"tags[{index}]"})
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise errors.InvalidCustomerTags(f"a customer has at most {MAX_TAGS} tags",
                                         details={"field": "tags", "maximum": MAX_TAGS})
    return tuple(tags)


def normalize_cancel_reason(raw: str) -> str:
    reason = raw.strip() or "merchant_cancelled"
    if not _REASON.match(reason):
        raise errors.InvalidOrderRequest("reason must be a snake_case code of at most 64 characters",
                                         details={"field": "reason"})
    return reason


@dataclass(frozen=True)
class CustomerInput:
    external_id: str
    phone: str | None
    birth_year: int | None
    region: str | None


@dataclass(frozen=True)
class NewOrder:
    """A validated CreateOrder request."""

    idempotency_key: str
    request_fingerprint: str
    customer: CustomerInput
    # (product_id, quantity), merged per product and sorted, as the catalog reserves them.
    items: tuple[tuple[str, int], ...]
    store_id: str

    @classmethod
    def parse(cls, *, idempotency_key: str, request_fingerprint: str, external_id: str, phone: str,
              birth_year: int, region: str, items: list[tuple[str, int]], store_id: str,
              current_year: int) -> NewOrder:
        key = idempotency_key.strip()
        if not key:
            raise errors.IdempotencyKeyRequired("an idempotency key is required to create an order",
                                                details={"field": "idempotency_key"})
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise errors.InvalidOrderRequest(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters",
                                             details={"field": "idempotency_key"})
        if not items:
            raise errors.EmptyOrder("an order needs at least one item", details={"field": "items"})
        if len(items) > MAX_ITEMS:
            raise errors.InvalidOrderRequest(f"an order has at most {MAX_ITEMS} items", details={"field": "items"})
        merged: dict[str, int] = {}
        for index, (product_id, quantity) in enumerate(items):
            if not product_id.strip():
                raise errors.InvalidOrderRequest("every item needs a product_id",
                                                 details={"field": f"items[{index}].product_id"})
            if not 1 <= quantity <= MAX_QUANTITY:
                raise errors.InvalidQuantity(f"quantity must be between 1 and {MAX_QUANTITY}",
                                             details={"field": f"items[{index}].quantity", "product_id": product_id})
            merged[product_id] = merged.get(product_id, 0) + quantity
            if merged[product_id] > MAX_QUANTITY:
                raise errors.InvalidQuantity(f"at most {MAX_QUANTITY} units of one product per order",
                                             details={"field": "items", "product_id": product_id})
        external_id = external_id.strip()
        if not 1 <= len(external_id) <= MAX_EXTERNAL_ID:
            raise errors.InvalidCustomer(f"customer.external_id must be 1 to {MAX_EXTERNAL_ID} characters",
                                         details={"field": "customer.external_id"})
        if birth_year and not MIN_BIRTH_YEAR <= birth_year <= current_year:
            raise errors.InvalidBirthYear(f"birth_year must be between {MIN_BIRTH_YEAR} and {current_year}, "
                                          "or 0 when unknown", details={"field": "customer.birth_year"})
        region = region.strip()
        if region and not _REGION.match(region):
            raise errors.InvalidCustomer("region must be an ISO 3166-2 code such as CN-SH",
                                         details={"field": "customer.region"})
        customer = CustomerInput(external_id, normalize_phone(phone), birth_year or None, region or None)
        sorted_items = tuple(sorted(merged.items()))
        store_id = store_id.strip()
        fingerprint = request_fingerprint.strip() or _fingerprint(customer, sorted_items, store_id)
        return cls(key, fingerprint, customer, sorted_items, store_id)


def _fingerprint(customer: CustomerInput, items: tuple[tuple[str, int], ...], store_id: str) -> str:
    """When the caller sends no fingerprint, one of the normalised request, so a reused key is still caught."""
    body = json.dumps({"customer": [customer.external_id, customer.phone, customer.birth_year, customer.region],
                       "items": items, "store_id": store_id}, sort_keys=True, ensure_ascii=False)
    return "orders:" + hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class CouponTerms:
    face_value: int
    threshold: int
    store_ids: tuple[str, ...]
    redeem_methods: tuple[str, ...]
    validity_mode: str
    validity_days: int
    starts_after_days: int
    starts_at: datetime | None
    ends_at: datetime | None
    discount_rate: int = 0  # basis points; 0 = a face-value coupon
    max_discount: int = 0  # fen; 0 = no cap
    # (weekdays, start_hour, end_hour) windows in which the coupon may be redeemed; empty = any time
    usage_windows: tuple[tuple[tuple[int, ...], int, int], ...] = ()
    max_uses: int = 1  # 次卡: uses per coupon


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    product_name: str
    product_kind: str
    category_id: str
    quantity: int
    unit_price: int
    coupon: CouponTerms | None = None

    @property
    def line_amount(self) -> int:
        return self.unit_price * self.quantity


def fully_delivered(lines: tuple[OrderLine, ...] | list[OrderLine], coupons_issued: dict[str, int],
                    goods_delivered: set[str]) -> bool:
    """Whether a digital order has everything: a coupon per coupon unit, every virtual line delivered.

    Physical lines are shipped, never delivered by events, so an order with one is never "fully delivered".
    """
    if not lines:
        return False
    for line in lines:
        if line.product_kind == "coupon" and coupons_issued.get(line.product_id, 0) < line.quantity:
            return False
        if line.product_kind == "virtual" and line.product_id not in goods_delivered:
            return False
        if line.product_kind not in ("coupon", "virtual"):
            return False
    return True


@dataclass(frozen=True)
class Discount:
    rule_id: str
    kind: str
    amount: int
    description: str


@dataclass(frozen=True)
class PriceQuote:
    subtotal: int
    discount_amount: int
    total: int
    discounts: tuple[Discount, ...]


@dataclass(frozen=True)
class Amounts:
    total: int
    discount: int
    payable: int

    @classmethod
    def from_quote(cls, lines: list[OrderLine], quote: PriceQuote) -> Amounts:
        """Our own sum of the lines is the total; the quote may only take a discount off it."""
        total = sum(line.line_amount for line in lines)
        consistent = (quote.subtotal == total and 0 <= quote.discount_amount <= total
                      and quote.total == total - quote.discount_amount)
        if not consistent:
            raise errors.PriceQuoteInconsistent(
                "the price quote does not add up to the order's lines",
                details={"lines_total": total, "quote_subtotal": quote.subtotal,
                         "quote_discount": quote.discount_amount, "quote_total": quote.total})
        return cls(total, quote.discount_amount, total - quote.discount_amount)


@dataclass(frozen=True)
class Customer:
    id: str
    external_id: str
    phone: str | None
    birth_year: int | None
    region: str | None
    tags: tuple[str, ...] = ()

    @property
    def phone_masked(self) -> str:
        return mask_phone(self.phone)


@dataclass(frozen=True)
class ReturnedPayment:
    """Money a provider took for this order after it could no longer be paid, and its way back."""

    channel: str
    amount: int
    status: str  # pending | refunded | failed
    created_at: datetime
    provider_status: str | None = None  # the money at the provider: processing | succeeded | abnormal | closed


@dataclass(frozen=True)
class OrderRefund:
    """A refund of the order as the order shows it: what, how much, and where the money is."""

    id: str
    status: str  # requested | succeeded | refused
    amount: int
    reason: str
    items: dict[str, int]  # product id -> quantity
    voided_coupon_ids: list[str]
    created_at: datetime
    provider_status: str | None = None  # processing | succeeded | abnormal | closed; None: no provider


@dataclass
class Order:
    id: str
    merchant_id: str
    mode: str
    status: str
    customer: Customer
    store_id: str
    total_amount: int
    discount_amount: int
    payable_amount: int
    paid_amount: int
    channel: str
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    lines: list[OrderLine] = field(default_factory=list)
    discounts: list[Discount] = field(default_factory=list)
    shipment: Shipment | None = None
    returned_payments: list[ReturnedPayment] = field(default_factory=list)
    refunds: list[OrderRefund] = field(default_factory=list)

    @property
    def has_physical_goods(self) -> bool:
        return any(line.product_kind == "physical" for line in self.lines)


MAX_CARRIER = 64
MAX_TRACKING_NUMBER = 64
_TRACKING = re.compile(r"^[A-Za-z0-9-]{4,64}$")


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    shipped_at: datetime | None = None

    @classmethod
    def parse(cls, carrier: str, tracking_number: str) -> Shipment:
        carrier, tracking_number = carrier.strip(), tracking_number.strip().replace(" ", "")
        if not 1 <= len(carrier) <= MAX_CARRIER:
            raise errors.InvalidOrderRequest(f"carrier must be 1 to {MAX_CARRIER} characters (e.g. SF Express)",
                                             details={"field": "carrier"})
        if not _TRACKING.match(tracking_number):
            raise errors.InvalidOrderRequest("tracking_number must be 4 to 64 letters, digits or hyphens",
                                             details={"field": "tracking_number"})
        return cls(carrier, tracking_number)


@dataclass(frozen=True)
class OrderSettings:
    """A merchant's order rules per mode; the defaults apply until the merchant sets them."""

    auto_cancel_minutes: int = 30
    auto_confirm_days: int = 7
    refund_window_days: int = 7
    refund_expired_coupons: bool = False
    allow_partial_refunds: bool = True
    updated_at: datetime | None = None

    @classmethod
    def parse(cls, *, auto_cancel_minutes: int, auto_confirm_days: int, refund_window_days: int,
              refund_expired_coupons: bool, allow_partial_refunds: bool) -> OrderSettings:
        if not 1 <= auto_cancel_minutes <= 10080:
            raise errors.InvalidOrderSettings("auto_cancel_minutes must be between 1 and 10080 (7 days)",
                                              details={"field": "auto_cancel_minutes"})
        if not 1 <= auto_confirm_days <= 90:
            raise errors.InvalidOrderSettings("auto_confirm_days must be between 1 and 90",
                                              details={"field": "auto_confirm_days"})
        if not 0 <= refund_window_days <= 365:
            raise errors.InvalidOrderSettings("refund_window_days must be between 0 and 365",
                                              details={"field": "refund_window_days"})
        return cls(auto_cancel_minutes, auto_confirm_days, refund_window_days, refund_expired_coupons,
                   allow_partial_refunds)


@dataclass(frozen=True)
class OrderFilter:
    status: str = ""
    store_id: str = ""
    customer_id: str = ""
    product_id: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    # Store-scoped staff: only these stores' orders (empty = every store).
    within_stores: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status and self.status not in LISTED_STATUSES:
            raise errors.InvalidOrderRequest(f"status must be one of {', '.join(LISTED_STATUSES)}",
                                             details={"field": "status"})


@dataclass(frozen=True)
class CustomerSummary:
    customer: Customer
    order_count: int
    paid_amount: int
    first_seen_at: datetime
    last_order_at: datetime | None
