"""Reads and writes of order rows for one merchant and mode, mapping them to domain objects.

`OrdersRepository` filters every query by the caller's merchant and mode. The two module-level queries
at the end are the sweeper's, the only ones that look across tenants: they return ids and tenants only,
and the sweeper acts on each order through a repository bound to that order's own tenant.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from weika_kit import crypto, ids
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork
from weika_orders.adapters import tables as t
from weika_orders.domain.model import (
    CREATING,
    FAILED,
    LISTED_STATUSES,
    PAID,
    PENDING_PAYMENT,
    Amounts,
    CouponTerms,
    Customer,
    CustomerInput,
    CustomerSummary,
    Discount,
    Order,
    OrderFilter,
    OrderLine,
    OrderRefund,
    OrderSettings,
    ReturnedPayment,
    Shipment,
    may_transition,
)

log = logging.getLogger(__name__)


def terms_to_json(terms: CouponTerms | None) -> str | None:
    if terms is None:
        return None
    return json.dumps({
        "face_value": terms.face_value, "threshold": terms.threshold, "store_ids": list(terms.store_ids),
        "redeem_methods": list(terms.redeem_methods), "validity_mode": terms.validity_mode,
        "validity_days": terms.validity_days, "starts_after_days": terms.starts_after_days,
        "starts_at": terms.starts_at.isoformat() if terms.starts_at else None,
        "ends_at": terms.ends_at.isoformat() if terms.ends_at else None,
        "discount_rate": terms.discount_rate, "max_discount": terms.max_discount,
        "usage_windows": [[list(days), start, end] for days, start, end in terms.usage_windows],
        "max_uses": terms.max_uses,
    })


def terms_from_json(raw: str | None) -> CouponTerms | None:
    if not raw:
        return None
    data = json.loads(raw)
    return CouponTerms(
        face_value=data["face_value"], threshold=data["threshold"], store_ids=tuple(data["store_ids"]),
        redeem_methods=tuple(data["redeem_methods"]), validity_mode=data["validity_mode"],
        validity_days=data["validity_days"], starts_after_days=data["starts_after_days"],
        starts_at=datetime.fromisoformat(data["starts_at"]) if data["starts_at"] else None,
        ends_at=datetime.fromisoformat(data["ends_at"]) if data["ends_at"] else None,
        # Orders stored before discount rates and usage windows existed have neither.
        discount_rate=data.get("discount_rate", 0), max_discount=data.get("max_discount", 0),
        usage_windows=tuple((tuple(days), start, end) for days, start, end in data.get("usage_windows", [])),
        max_uses=data.get("max_uses", 1))


def _discounts_to_json(discounts: list[Discount]) -> str:
    return json.dumps([{"rule_id": d.rule_id, "kind": d.kind, "amount": d.amount, "description": d.description}
                       for d in discounts], ensure_ascii=False)


def _decrypt_phone(token: str | None, customer_id: str) -> str | None:
    if not token:
        return None
    try:
        return crypto.decrypt(token)
    except crypto.InvalidToken:
        # A rotated or wrong WEIKA_SECRET_KEY: the order is still readable, only the phone is not.
        log.warning("customer phone cannot be decrypted", extra={"customer_id": customer_id})
        return None


class OrdersRepository:
    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self, table: t.Table):  # type: ignore[no-untyped-def]
        return (table.c.merchant_id == self.merchant_id) & (table.c.mode == self.mode)

    # --- customers

    def upsert_customer(self, customer: CustomerInput) -> str:
        """The customer's id, created on first sight; known fields sent again overwrite the stored ones."""
        now = self.uow.now()
        dialect_insert = sqlite.insert if self.uow.db.is_sqlite else postgresql.insert
        stmt = dialect_insert(t.customers).values(
            id=ids.new_id("cus"), merchant_id=self.merchant_id, mode=self.mode, external_id=customer.external_id,
            phone_encrypted=crypto.encrypt(customer.phone) if customer.phone else None,
            birth_year=customer.birth_year, region=customer.region, created_at=now, updated_at=now)
        # One statement, so two first orders of the same new customer cannot both insert it.
        stmt = stmt.on_conflict_do_update(
            index_elements=["merchant_id", "mode", "external_id"],
            set_={
                "phone_encrypted": func.coalesce(stmt.excluded.phone_encrypted, t.customers.c.phone_encrypted),
                "birth_year": func.coalesce(stmt.excluded.birth_year, t.customers.c.birth_year),
                "region": func.coalesce(stmt.excluded.region, t.customers.c.region),
                "updated_at": now,
            })
        self.uow.execute(stmt)
        return str(self.uow.execute(
            select(t.customers.c.id).where(self._mine(t.customers),
                                           t.customers.c.external_id == customer.external_id)).scalar_one())

    # --- orders

    def find_by_idempotency_key(self, key: str) -> Row[Any] | None:
        return self.uow.execute(
            select(t.orders.c.id, t.orders.c.status, t.orders.c.request_fingerprint, t.orders.c.customer_id)
            .where(self._mine(t.orders), t.orders.c.idempotency_key == key)).first()

    def add_creating_order(self, order_id: str, key: str, fingerprint: str, customer_id: str, store_id: str) -> None:
        now = self.uow.now()
        self.uow.execute(insert(t.orders).values(
            id=order_id, merchant_id=self.merchant_id, mode=self.mode, status=CREATING, idempotency_key=key,
            request_fingerprint=fingerprint, customer_id=customer_id, store_id=store_id, total_amount=0,
            discount_amount=0, payable_amount=0, paid_amount=0, channel="", discounts="[]",
            created_at=now, updated_at=now))

    def delete_creating_order(self, order_id: str) -> bool:
        """Forget an order whose creation was refused, so its idempotency key can be used again."""
        result = self.uow.execute(
            delete(t.orders).where(t.orders.c.id == order_id, t.orders.c.status == CREATING, self._mine(t.orders)))
        return bool(result.rowcount == 1)

    def move(self, order_id: str, expected: str, target: str, *, unchanged_since: tuple[str, datetime] | None = None,
             **values: Any) -> bool:
        """`expected -> target` by a conditional update; False when the order is not (or no longer) `expected`.

        `unchanged_since=(column, cutoff)` adds `column < cutoff` to the condition: a timer's claim.
        """
        if not may_transition(expected, target):
            raise ValueError(f"{expected} -> {target} is not a transition of the order status machine")
        condition = [t.orders.c.id == order_id, t.orders.c.status == expected, self._mine(t.orders)]
        if unchanged_since is not None:
            condition.append(t.orders.c[unchanged_since[0]] < unchanged_since[1])
        result = self.uow.execute(
            update(t.orders).where(*condition).values(status=target, updated_at=self.uow.now(), **values))
        return bool(result.rowcount == 1)

    def complete_creation(self, order_id: str, lines: list[OrderLine], amounts: Amounts,
                          discounts: list[Discount]) -> bool:
        """`creating -> pending_payment` with the lines and amounts; False if the order is no longer creating."""
        if not self.move(order_id, CREATING, PENDING_PAYMENT, total_amount=amounts.total,
                         discount_amount=amounts.discount, payable_amount=amounts.payable,
                         discounts=_discounts_to_json(discounts)):
            return False
        self.uow.execute(insert(t.order_lines), [
            {"order_id": order_id, "product_id": line.product_id, "product_name": line.product_name,
             "product_kind": line.product_kind, "category_id": line.category_id, "quantity": line.quantity,
             "unit_price": line.unit_price, "line_amount": line.line_amount,
             "coupon_terms": terms_to_json(line.coupon)}
            for line in lines])
        return True

    def mark_paid(self, order_id: str, channel: str) -> bool:
        """`pending_payment -> paid`, the whole payable amount received through `channel`; False if not pending."""
        return self.move(order_id, PENDING_PAYMENT, PAID, channel=channel, paid_amount=t.orders.c.payable_amount,
                         paid_at=self.uow.now())

    def set_stock_released(self, order_id: str, released: bool) -> None:
        self.uow.execute(update(t.orders).where(t.orders.c.id == order_id, self._mine(t.orders))
                         .values(stock_released_at=self.uow.now() if released else None))

    def status_of(self, order_id: str) -> str | None:
        return self.uow.execute(
            select(t.orders.c.status).where(t.orders.c.id == order_id, self._mine(t.orders))).scalar_one_or_none()

    def get_order(self, order_id: str) -> Order | None:
        return self.get_orders([order_id]).get(order_id)

    def get_orders(self, order_ids: list[str]) -> dict[str, Order]:
        """The caller's orders among `order_ids`, each whole, in six queries whatever their number."""
        if not order_ids:
            return {}
        o, c = t.orders, t.customers
        rows = list(self.uow.execute(
            select(o, c.c.external_id, c.c.phone_encrypted, c.c.birth_year, c.c.region)
            .join(c, c.c.id == o.c.customer_id)
            .where(o.c.id.in_(order_ids), self._mine(o))))
        if not rows:
            return {}
        found = [row.id for row in rows]
        ol = t.order_lines
        lines: dict[str, list[OrderLine]] = {}
        for r in self.uow.execute(select(ol).where(ol.c.order_id.in_(found)).order_by(ol.c.order_id, ol.c.product_id)):
            lines.setdefault(r.order_id, []).append(OrderLine(
                product_id=r.product_id, product_name=r.product_name, product_kind=r.product_kind,
                category_id=r.category_id, quantity=r.quantity, unit_price=r.unit_price,
                coupon=terms_from_json(r.coupon_terms)))
        shipments = {r.order_id: Shipment(r.carrier, r.tracking_number, r.shipped_at)
                     for r in self.uow.execute(select(t.shipments).where(t.shipments.c.order_id.in_(found)))}
        sp = t.stray_payments
        returned: dict[str, list[ReturnedPayment]] = {}
        for r in self.uow.execute(select(sp).where(sp.c.order_id.in_(found), self._mine(sp))
                                  .order_by(sp.c.created_at, sp.c.id)):
            returned.setdefault(r.order_id, []).append(
                ReturnedPayment(r.channel, r.amount, r.status, r.created_at, r.provider_status))
        rf, rl = t.refunds, t.refund_lines
        items: dict[str, dict[str, int]] = {}
        for line in self.uow.execute(select(rl).join(rf, rf.c.id == rl.c.refund_id)
                                     .where(rf.c.order_id.in_(found), self._mine(rf))
                                     .order_by(rl.c.product_id)):
            items.setdefault(line.refund_id, {})[line.product_id] = line.quantity
        refunds: dict[str, list[OrderRefund]] = {}
        for r in self.uow.execute(select(rf).where(rf.c.order_id.in_(found), self._mine(rf))
                                  .order_by(rf.c.created_at, rf.c.id)):
            refunds.setdefault(r.order_id, []).append(OrderRefund(
                r.id, r.status, r.amount, r.reason, items.get(r.id, {}), json.loads(r.voided_coupon_ids),
                r.created_at, r.provider_status))
        orders: dict[str, Order] = {}
        for row in rows:
            customer = Customer(id=row.customer_id, external_id=row.external_id,
                                phone=_decrypt_phone(row.phone_encrypted, row.customer_id),
                                birth_year=row.birth_year, region=row.region)
            orders[row.id] = Order(
                id=row.id, merchant_id=row.merchant_id, mode=row.mode, status=row.status, customer=customer,
                store_id=row.store_id, total_amount=row.total_amount, discount_amount=row.discount_amount,
                payable_amount=row.payable_amount, paid_amount=row.paid_amount, channel=row.channel,
                created_at=row.created_at, updated_at=row.updated_at, paid_at=row.paid_at,
                lines=lines.get(row.id, []), discounts=[Discount(**d) for d in json.loads(row.discounts)],
                shipment=shipments.get(row.id), returned_payments=returned.get(row.id, []),
                refunds=refunds.get(row.id, []))
        return orders

    # --- customers with their order totals

    def _customer_summaries(self, where: list[Any], limit: int) -> list[CustomerSummary]:
        c, o = t.customers, t.orders
        counted = (o.c.customer_id == c.c.id) & o.c.status.in_(LISTED_STATUSES)
        query = (select(c, func.count(o.c.id).label("order_count"),
                        func.coalesce(func.sum(o.c.paid_amount), 0).label("paid_total"),
                        func.max(o.c.created_at).label("last_order_at"))
                 .select_from(c.outerjoin(o, counted)).where(self._mine(c), *where)
                 .group_by(c.c.id).order_by(c.c.created_at.desc(), c.c.id.desc()).limit(limit))
        rows = list(self.uow.execute(query))
        tags = self.tags_of([r.id for r in rows])
        return [CustomerSummary(
            customer=Customer(id=r.id, external_id=r.external_id, phone=_decrypt_phone(r.phone_encrypted, r.id),
                              birth_year=r.birth_year, region=r.region, tags=tags.get(r.id, ())),
            order_count=int(r.order_count), paid_amount=int(r.paid_total), first_seen_at=r.created_at,
            last_order_at=r.last_order_at) for r in rows]

    def tags_of(self, customer_ids: list[str]) -> dict[str, tuple[str, ...]]:
        if not customer_ids:
            return {}
        ct = t.customer_tags
        found: dict[str, list[str]] = {}
        for row in self.uow.execute(select(ct.c.customer_id, ct.c.tag).where(
                self._mine(ct), ct.c.customer_id.in_(customer_ids)).order_by(ct.c.customer_id, ct.c.position)):
            found.setdefault(row.customer_id, []).append(row.tag)
        return {customer_id: tuple(tags) for customer_id, tags in found.items()}

    def set_tags(self, customer_id: str, tags: tuple[str, ...]) -> bool:
        """Replace the customer's tags; False if there is no such customer (of this tenant).

        Touching the customer row first takes its row lock, so two concurrent replacements run one after the
        other (the last one wins whole) instead of mixing their delete and insert.
        """
        touched = self.uow.execute(update(t.customers).where(t.customers.c.id == customer_id, self._mine(t.customers))
                                   .values(updated_at=self.uow.now()))
        if touched.rowcount != 1:
            return False
        ct = t.customer_tags
        self.uow.execute(delete(ct).where(ct.c.customer_id == customer_id, self._mine(ct)))
        if tags:
            self.uow.execute(insert(ct), [dict(customer_id=customer_id, tag=tag, merchant_id=self.merchant_id,
                                               mode=self.mode, position=i) for i, tag in enumerate(tags)])
        return True

    def list_customers(self, region: str, limit: int, after: tuple[datetime, str] | None,
                       tag: str = "") -> list[CustomerSummary]:
        c, ct = t.customers, t.customer_tags
        where: list[Any] = [c.c.region == region] if region else []
        if tag:
            where.append(c.c.id.in_(select(ct.c.customer_id).where(self._mine(ct), ct.c.tag == tag)))
        if after is not None:
            where.append((c.c.created_at < after[0]) | ((c.c.created_at == after[0]) & (c.c.id < after[1])))
        return self._customer_summaries(where, limit)

    def customer_summary(self, customer_id: str) -> CustomerSummary | None:
        found = self._customer_summaries([t.customers.c.id == customer_id], 1)
        return found[0] if found else None

    # --- lists, counts, shipments, settings

    def _filtered(self, query, where: OrderFilter):  # type: ignore[no-untyped-def]
        o = t.orders
        query = query.where(self._mine(o), o.c.status.in_(LISTED_STATUSES))
        if where.status:
            query = query.where(o.c.status == where.status)
        if where.store_id:
            query = query.where(o.c.store_id == where.store_id)
        if where.within_stores:
            query = query.where(o.c.store_id.in_(where.within_stores))
        if where.customer_id:
            query = query.where(o.c.customer_id == where.customer_id)
        if where.created_from:
            query = query.where(o.c.created_at >= where.created_from)
        if where.created_to:
            query = query.where(o.c.created_at < where.created_to)
        if where.product_id:
            ol = t.order_lines
            query = query.where(select(ol.c.order_id).where(ol.c.order_id == o.c.id, ol.c.product_id == where.product_id)
                                .exists())
        return query

    def list_orders(self, where: OrderFilter, limit: int, after: tuple[datetime, str] | None) -> list[Order]:
        """Newest first; `after` is the (created_at, id) of the last order of the previous page."""
        o = t.orders
        query = self._filtered(select(o.c.id), where)
        if after is not None:
            query = query.where((o.c.created_at < after[0]) | ((o.c.created_at == after[0]) & (o.c.id < after[1])))
        ids_ = [r.id for r in self.uow.execute(query.order_by(o.c.created_at.desc(), o.c.id.desc()).limit(limit))]
        orders = self.get_orders(ids_)
        return [orders[i] for i in ids_ if i in orders]

    def count_by_status(self, where: OrderFilter) -> dict[str, int]:
        o = t.orders
        query = self._filtered(select(o.c.status, func.count()), where).group_by(o.c.status)
        return {row[0]: int(row[1]) for row in self.uow.execute(query)}

    def add_shipment(self, order_id: str, shipment: Shipment) -> None:
        self.uow.execute(insert(t.shipments).values(
            order_id=order_id, merchant_id=self.merchant_id, mode=self.mode, carrier=shipment.carrier,
            tracking_number=shipment.tracking_number, shipped_at=self.uow.now()))

    def settings(self) -> OrderSettings:
        s = t.order_settings
        row = self.uow.execute(select(s).where(self._mine(s))).first()
        if row is None:
            return OrderSettings()
        return OrderSettings(row.auto_cancel_minutes, row.auto_confirm_days, row.refund_window_days,
                             bool(row.refund_expired_coupons), bool(row.allow_partial_refunds), row.updated_at)

    def save_settings(self, settings: OrderSettings) -> None:
        values = {"auto_cancel_minutes": settings.auto_cancel_minutes, "auto_confirm_days": settings.auto_confirm_days,
                  "refund_window_days": settings.refund_window_days,
                  "refund_expired_coupons": int(settings.refund_expired_coupons),
                  "allow_partial_refunds": int(settings.allow_partial_refunds), "updated_at": self.uow.now()}
        dialect_insert = sqlite.insert if self.uow.db.is_sqlite else postgresql.insert
        stmt = dialect_insert(t.order_settings).values(merchant_id=self.merchant_id, mode=self.mode, **values)
        self.uow.execute(stmt.on_conflict_do_update(index_elements=["merchant_id", "mode"], set_=values))

    # --- payments and history

    def add_payment(self, order_id: str, channel: str, amount: int, provider_transaction_id: str | None = None) -> str:
        payment_id = ids.new_id("pay")
        self.uow.execute(insert(t.payments).values(
            id=payment_id, order_id=order_id, merchant_id=self.merchant_id, mode=self.mode, channel=channel,
            amount=amount, status="succeeded", created_at=self.uow.now(),
            provider_transaction_id=provider_transaction_id))
        return payment_id

    def lock_order(self, order_id: str) -> str | None:
        """The order's status, its row locked until commit (PostgreSQL; SQLite has one writer anyway)."""
        return self.uow.execute(select(t.orders.c.status).where(t.orders.c.id == order_id, self._mine(t.orders))
                                .with_for_update()).scalar_one_or_none()

    def record_delivery(self, order_id: str, product_id: str, delivery_key: str) -> bool:
        """Record one delivered thing of an order; False when it was recorded already (a redelivered event)."""
        dialect_insert = sqlite.insert if self.uow.db.is_sqlite else postgresql.insert
        result = self.uow.execute(dialect_insert(t.order_deliveries).values(
            order_id=order_id, delivery_key=delivery_key, merchant_id=self.merchant_id, mode=self.mode,
            product_id=product_id, delivered_at=self.uow.now()).on_conflict_do_nothing(
            index_elements=["order_id", "delivery_key"]).returning(t.order_deliveries.c.order_id))
        # RETURNING, not rowcount: psycopg does not report a reliable rowcount for INSERT .. ON CONFLICT here.
        return result.first() is not None

    def deliveries(self, order_id: str) -> tuple[dict[str, int], set[str]]:
        """(coupons issued per product, products whose virtual goods were delivered) of one order."""
        d = t.order_deliveries
        coupons: dict[str, int] = {}
        goods: set[str] = set()
        for row in self.uow.execute(select(d.c.product_id, d.c.delivery_key).where(
                d.c.order_id == order_id, self._mine(d))):
            if row.delivery_key.startswith("coupon:"):
                coupons[row.product_id] = coupons.get(row.product_id, 0) + 1
            else:
                goods.add(row.product_id)
        return coupons, goods

    def add_history(self, order_id: str, from_status: str, to_status: str, actor: str, reason: str) -> None:
        self.uow.execute(insert(t.order_history).values(
            order_id=order_id, merchant_id=self.merchant_id, mode=self.mode, from_status=from_status,
            to_status=to_status, actor=actor[:60], reason=reason[:64], at=self.uow.now()))

    def history(self, order_id: str) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.order_history).where(t.order_history.c.order_id == order_id, self._mine(t.order_history))
            .order_by(t.order_history.c.id)))

    def payments(self, order_id: str) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.payments).where(t.payments.c.order_id == order_id, self._mine(t.payments))
            .order_by(t.payments.c.created_at)))


def orders_stuck_in_creating(uow: UnitOfWork, created_before: datetime, limit: int = 100) -> list[Row[Any]]:
    """Every tenant's orders still `creating` since before `created_before`: (id, merchant_id, mode)."""
    o = t.orders
    return list(uow.execute(
        select(o.c.id, o.c.merchant_id, o.c.mode)
        .where(o.c.status == CREATING, o.c.created_at < created_before)
        .order_by(o.c.created_at).limit(limit)))


def failed_orders_holding_stock(uow: UnitOfWork, limit: int = 100) -> list[Row[Any]]:
    """Every tenant's failed orders whose stock release the catalog has not confirmed yet."""
    o = t.orders
    return list(uow.execute(
        select(o.c.id, o.c.merchant_id, o.c.mode)
        .where(o.c.status == FAILED, o.c.stock_released_at.is_(None))
        .order_by(o.c.created_at).limit(limit)))


def tenants_with_orders_in(uow: UnitOfWork, statuses: tuple[str, ...]) -> list[Row[Any]]:
    """Every (merchant_id, mode) with at least one order in one of `statuses`: the timers' work list."""
    o = t.orders
    return list(uow.execute(select(o.c.merchant_id, o.c.mode).where(o.c.status.in_(statuses)).distinct()))


def due_order_ids(uow: UnitOfWork, merchant_id: str, mode: str, statuses: tuple[str, ...], column: str,
                  before: datetime, limit: int = 200) -> list[str]:
    """One tenant's orders in `statuses` whose `column` (created_at / updated_at) is before `before`."""
    o = t.orders
    return [r.id for r in uow.execute(
        select(o.c.id).where(o.c.merchant_id == merchant_id, o.c.mode == mode, o.c.status.in_(statuses),
                             o.c[column] < before).order_by(o.c[column]).limit(limit))]
