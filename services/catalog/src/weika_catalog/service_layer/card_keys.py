"""Virtual goods: card keys (卡密) loaded encrypted and allocated exactly one per paid unit, top-ups through
a supplier adapter, and the buyer's view of what an order delivered.

A key is allocated by a conditional update (it must still be free) and its (order, product, unit) is unique,
so neither a redelivered order-paid nor two racing consumers can hand out a key twice or a unit two keys.
An inventory that runs dry leaves the delivery `pending`; loading keys fulfils pending deliveries first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from weika_catalog import metrics
from weika_catalog.adapters.repository import AWAITING_PAYMENT, GUARD_ATTEMPTS, CatalogRepository
from weika_catalog.adapters.supplier import TopUpSupplier
from weika_catalog.domain import errors
from weika_catalog.domain.model import Product
from weika_catalog.service_layer.services import (
    _actor,
    _must,
    _stock_changed,
    decode_cursor,
    encode_cursor,
    page_size,
)
from weika_kit import crypto, ids
from weika_kit.context import Caller
from weika_kit.db import Database, UnitOfWork
from weika_kit.errors import Conflict, InvalidArgument

FINGERPRINT_PURPOSE = "catalog.card_key"
MAX_KEYS_PER_LOAD = 10_000
# How often an allocation retries after another transaction took the key it aimed at.
ALLOCATION_ATTEMPTS = 20


@dataclass(frozen=True)
class CardKeyInput:
    card_number: str
    password: str


@dataclass(frozen=True)
class RefusedKey:
    index: int
    card_number_masked: str
    reason: str  # duplicate | invalid


@dataclass(frozen=True)
class LoadResult:
    loaded: int
    refused: list[RefusedKey]
    available: int


@dataclass(frozen=True)
class DeliveredKey:
    product_id: str
    product_name: str
    unit_index: int
    card_number: str
    password: str
    delivered_at: datetime


@dataclass(frozen=True)
class PendingDelivery:
    product_id: str
    quantity: int


def mask(card_number: str) -> str:
    """Enough to tell keys apart in a list, never enough to use one."""
    if len(card_number) <= 4:
        return "*" * len(card_number)
    if len(card_number) <= 8:
        return "*" * (len(card_number) - 2) + card_number[-2:]
    return card_number[:4] + "*" * (len(card_number) - 8) + card_number[-4:]


def _card_key_product(repo: CatalogRepository, product_id: str) -> Product:
    product = _must(repo, product_id)
    if not product.delivers_card_keys:
        raise errors.NotACardKeyProduct(f"{product.name} is not a card-key product",
                                        details={"product_id": product_id, "kind": product.kind})
    return product


def load_card_keys(db: Database, caller: Caller, product_id: str, keys: list[CardKeyInput]) -> LoadResult:
    """Add new keys, refuse (and report) duplicates of loaded keys or within the batch, then fulfil any
    deliveries waiting for keys; the rest adds to the product's available stock."""
    if not keys:
        raise InvalidArgument("give at least one card key", code="invalid_card_keys", details={"field": "keys"})
    if len(keys) > MAX_KEYS_PER_LOAD:
        raise InvalidArgument(f"at most {MAX_KEYS_PER_LOAD} card keys per load", code="invalid_card_keys",
                              details={"field": "keys", "maximum": MAX_KEYS_PER_LOAD})
    refused: list[RefusedKey] = []
    candidates: list[tuple[int, CardKeyInput, str]] = []
    seen: set[str] = set()
    for index, key in enumerate(keys):
        number, password = key.card_number.strip(), key.password.strip()
        if not number or len(number) > 100 or len(password) > 200:
            refused.append(RefusedKey(index, mask(number), "invalid"))
            continue
        # The card number identifies the card: the same number twice is the same card, whatever the password.
        fp = crypto.fingerprint(number, purpose=f"{FINGERPRINT_PURPOSE}:{product_id}")
        if fp in seen:
            refused.append(RefusedKey(index, mask(number), "duplicate"))
            continue
        seen.add(fp)
        candidates.append((index, CardKeyInput(number, password), fp))
    try:
        with db.unit_of_work() as uow:
            repo = CatalogRepository(uow, caller)
            product = _card_key_product(repo, product_id)
            known = repo.known_fingerprints(product_id, [fp for _, _, fp in candidates])
            rows = []
            now = uow.now()
            for index, key, fp in candidates:
                if fp in known:
                    refused.append(RefusedKey(index, mask(key.card_number), "duplicate"))
                    continue
                secret = crypto.encrypt(json.dumps({"card_number": key.card_number, "password": key.password}))
                rows.append({"id": ids.new_id("ck"), "product_id": product_id, "fingerprint": fp, "secret": secret,
                             "card_number_masked": mask(key.card_number), "created_at": now})
            repo.add_card_keys(rows)
            used = fulfil_pending_deliveries(uow, repo, product)
            added = len(rows) - used
            if rows:
                if product.stock_mode == "limited" and added:
                    repo.adjust_stock(product_id, added)
                repo.record_move(product_id, None, added if product.stock_mode == "limited" else 0,
                                 "card_keys_loaded", _actor(caller),
                                 note=f"{len(rows)} loaded, {used} to pending deliveries")
                after = _must(repo, product_id)
                _stock_changed(uow, product, "", added, "restocked", after.available)
            available = _must(repo, product_id).card_keys_available
            uow.commit()
    except IntegrityError:
        raise Conflict("the same card keys were being loaded at the same moment; load again to see which "
                       "were taken", code="card_keys_loaded_concurrently",
                       details={"product_id": product_id}) from None
    metrics.CARD_KEYS_LOADED.labels(caller.mode).inc(len(rows))
    return LoadResult(len(rows), sorted(refused, key=lambda r: r.index), available)


def _allocate(repo: CatalogRepository, product_id: str, order_id: str, unit_index: int) -> bool:
    for _ in range(ALLOCATION_ATTEMPTS):
        if repo.allocate_card_key(product_id, order_id, unit_index):
            return True
        if not repo.free_card_keys(product_id):
            return False
    return False


def _deliver_units(uow: UnitOfWork, repo: CatalogRepository, product: Product, order_id: str) -> tuple[int, int]:
    """Allocate keys for the order's units not yet served and not withdrawn by a refund; (units served before,
    units served after). The delivery row is locked first, so a racing withdrawal waits and then sees what
    was served. Once every owed unit has its key, stock-changed "consumed" tells the orders service the goods
    are delivered."""
    row = repo.lock_delivery(order_id, product.id)
    if row is None or row.status != "pending":
        return 0, 0
    owed = row.quantity - row.withdrawn
    served = before = repo.allocated_units(order_id, product.id)
    while served < owed and _allocate(repo, product.id, order_id, served):
        served += 1
    if not repo.set_delivered(row, served):
        raise errors.DeliveryChangedConcurrently(
            "the delivery changed while its keys were allocated; it is retried",
            details={"order_id": order_id, "product_id": product.id})
    metrics.CARD_KEYS_ALLOCATED.labels(product.mode).inc(served - before)
    if served < owed:
        metrics.CARD_KEY_UNITS_PENDING.labels(product.mode).inc(owed - served)
    if served == owed and before < owed:
        _stock_changed(uow, product, order_id, 0, "consumed", _must(repo, product.id).available)
    return before, served


def deliver_order(uow: UnitOfWork, caller: Caller, order_id: str, lines: list[tuple[str, int]], *,
                  account: str = "", supplier: TopUpSupplier | None = None) -> None:
    """On order-paid: one key per unit of each card-key line, and one supplier call per top-up line, for the
    units a refund did not withdraw first. A repeated or racing call delivers nothing more (the delivery row
    is claimed first, the (order, product, unit) of a key is unique, and a supplier deduplicates by the
    (order, product) reference). Lines go by product id, the order a withdrawal locks them in."""
    repo = CatalogRepository(uow, caller)
    for product_id, quantity in sorted(lines):
        product = repo.get_product(product_id)
        if product is None or product.virtual is None:
            continue
        method = product.virtual.delivery
        if not repo.add_delivery(order_id, product_id, quantity, method, account if method == "top_up" else None):
            continue
        if method == "card_key":
            _deliver_units(uow, repo, product, order_id)
        elif supplier is not None:
            # nothing to top up when every unit was withdrawn by a refund before order-paid
            _top_up_owed(uow, repo, product, order_id, supplier, f"{order_id}:{product_id}")


def _top_up_owed(uow: UnitOfWork, repo: CatalogRepository, product: Product, order_id: str,
                 supplier: TopUpSupplier, reference: str) -> None:
    """Top up the units a pending top-up delivery still owes (quantity - withdrawn - delivered) in one supplier
    call deduplicated by `reference`, then stock-changed "consumed"."""
    assert product.virtual is not None
    row = repo.lock_delivery(order_id, product.id)
    if row is None or row.status != "pending":
        return
    transaction = supplier.top_up(sku=product.virtual.supplier_sku, account=row.account or "",
                                  quantity=row.quantity - row.withdrawn - row.delivered, reference=reference)
    if not repo.complete_top_up(row, transaction):
        raise errors.DeliveryChangedConcurrently(
            "the delivery changed while it was topped up; it is retried",
            details={"order_id": order_id, "product_id": product.id})
    _stock_changed(uow, product, order_id, 0, "consumed", _must(repo, product.id).available)


def fulfil_pending_deliveries(uow: UnitOfWork, repo: CatalogRepository, product: Product) -> int:
    """Serve deliveries waiting for keys of `product`, oldest first; how many keys they took."""
    used = 0
    for pending in repo.pending_deliveries(product.id):
        before, served = _deliver_units(uow, repo, product, pending.order_id)
        used += served - before
        if repo.free_card_keys(product.id) == 0:
            break
    return used


@dataclass(frozen=True)
class WithdrawnUnits:
    product_id: str
    quantity: int


def withdraw_deliveries(db: Database, caller: Caller, order_id: str, refund_id: str,
                        lines: list[tuple[str, int]]) -> list[WithdrawnUnits]:
    """Before a refund pays back virtual units: take them out of the order's delivery so they are never
    delivered, whether order-paid was handled already or comes later. All or nothing; idempotent per refund
    (a repeat answers the same and withdraws nothing more). Refused with virtual_goods_delivered when a line
    asks for more units than are still undelivered; products that are not virtual are answered with 0."""
    if not order_id or not refund_id:
        raise InvalidArgument("order_id and refund_id are required",
                              details={"field": "refund_id" if order_id else "order_id"})
    wanted: dict[str, int] = {}
    for product_id, quantity in lines:
        if quantity <= 0:
            raise InvalidArgument("quantity must be at least 1", code="invalid_quantity",
                                  details={"product_id": product_id})
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    withdrawn = _withdraw(db, caller, order_id, refund_id, wanted)
    if withdrawn is None:  # a concurrent call for the same refund won: answer what it recorded
        with db.unit_of_work() as uow:
            withdrawn = CatalogRepository(uow, caller).withdrawals_of_refund(refund_id)
    return [WithdrawnUnits(p, withdrawn.get(p, 0)) for p in sorted(wanted)]


def _withdraw(db: Database, caller: Caller, order_id: str, refund_id: str,
              wanted: dict[str, int]) -> dict[str, int] | None:
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        records = repo.withdrawal_records(refund_id)
        if any(r.restored_at is not None for r in records):
            # Withdrawing again would take back units the buyer was just given; a new refund has a new id.
            raise errors.WithdrawalRestored(
                f"refund {refund_id} was refused and its withdrawn units given back; it withdraws nothing again",
                details={"refund_id": refund_id, "order_id": order_id})
        if records:
            return {r.product_id: int(r.quantity) for r in records}
        withdrawn: dict[str, int] = {}
        # By product id, the order a delivery locks the same rows in.
        for product_id in sorted(wanted):
            product = repo.get_product(product_id)
            if product is None or product.virtual is None:
                continue  # physical goods come back to stock on order-refunded; coupons are voided elsewhere
            if not repo.claim_withdrawal(refund_id, order_id, product_id, wanted[product_id]):
                return None
            _withdraw_units(uow, repo, product, order_id, wanted[product_id])
            withdrawn[product_id] = wanted[product_id]
        uow.commit()
    if withdrawn:
        metrics.DELIVERY_UNITS_WITHDRAWN.labels(caller.mode).inc(sum(withdrawn.values()))
    return withdrawn


def _withdraw_units(uow: UnitOfWork, repo: CatalogRepository, product: Product, order_id: str,
                    units: int) -> None:
    assert product.virtual is not None
    for _ in range(GUARD_ATTEMPTS):
        row = repo.lock_delivery(order_id, product.id)
        if row is None:
            # order-paid not handled yet: leave the withdrawal for the delivery to honour
            if repo.add_withdrawn_placeholder(order_id, product.id, units, product.virtual.delivery):
                return
            continue  # the delivery was recorded meanwhile (PostgreSQL waited for its commit): decide on it
        if row.status != AWAITING_PAYMENT:
            undelivered = row.quantity - row.delivered - row.withdrawn
            if units > undelivered:
                raise errors.VirtualGoodsDelivered(
                    f"{product.name}: {row.delivered} unit(s) of this order were delivered already (a card key "
                    f"shown, a top-up performed); {max(undelivered, 0)} can be withdrawn, not {units}",
                    details={"product_id": product.id, "delivered": row.delivered, "requested": units})
        if repo.withdraw_units(row, units):
            if (product.delivers_card_keys and row.status == "pending"
                    and row.delivered >= row.quantity - row.withdrawn - units):
                # the units still waiting for keys were the ones withdrawn: nothing more is owed, as when
                # _deliver_units serves the last unit
                _stock_changed(uow, product, order_id, 0, "consumed", _must(repo, product.id).available)
            return
    raise errors.DeliveryChangedConcurrently(
        "the delivery kept changing while the refund withdrew its units; nothing was withdrawn, retry",
        details={"order_id": order_id, "product_id": product.id})


def restore_deliveries(db: Database, caller: Caller, order_id: str, refund_id: str, *,
                       supplier: TopUpSupplier | None = None) -> list[WithdrawnUnits]:
    """A refund refused after its withdrawal (a coupon of the same refund was redeemed): give the order back
    exactly the units the refund withdrew, and serve those now owed when order-paid was handled (card keys if
    any are free, else pending; a top-up through the supplier). Once per refund: the withdrawal rows are
    marked restored, a repeat answers the same and restores nothing more; a refund that withdrew nothing
    answers no lines. Refused with withdrawal_already_refunded when order-refunded restocked the units."""
    if not order_id or not refund_id:
        raise InvalidArgument("order_id and refund_id are required",
                              details={"field": "refund_id" if order_id else "order_id"})
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        # Locked (PostgreSQL) by product id: a racing restore or restock of this refund waits, then sees ours.
        records = repo.withdrawal_records(refund_id, order_id, lock=True)
        to_restore = [r for r in records if r.restored_at is None]
        restocked = sorted(repo.refund_restocked_products(refund_id) & {r.product_id for r in to_restore})
        if restocked:
            raise errors.WithdrawalAlreadyRefunded(
                f"refund {refund_id} was paid back and its withdrawn units restocked; they cannot be restored",
                details={"refund_id": refund_id, "order_id": order_id, "product_id": restocked[0]})
        for record in to_restore:
            if not repo.mark_withdrawal_restored(refund_id, record.product_id):
                raise errors.DeliveryChangedConcurrently(
                    "the withdrawal was restored meanwhile; nothing was restored, retry",
                    details={"order_id": order_id, "product_id": record.product_id})
            product = _must(repo, record.product_id)
            _restore_units(uow, repo, product, order_id, int(record.quantity), refund_id, supplier)
        uow.commit()
    if to_restore:
        metrics.DELIVERY_UNITS_RESTORED.labels(caller.mode).inc(sum(int(r.quantity) for r in to_restore))
    return [WithdrawnUnits(r.product_id, int(r.quantity)) for r in records]


def _restore_units(uow: UnitOfWork, repo: CatalogRepository, product: Product, order_id: str, units: int,
                   refund_id: str, supplier: TopUpSupplier | None) -> None:
    for _ in range(GUARD_ATTEMPTS):
        row = repo.lock_delivery(order_id, product.id)
        if row is None:
            return  # never happens: a withdrawal always leaves a delivery row
        if row.withdrawn < units:
            raise errors.DeliveryChangedConcurrently(
                f"the delivery has {row.withdrawn} unit(s) withdrawn, fewer than the {units} to restore",
                details={"order_id": order_id, "product_id": product.id})
        if repo.restore_units(row, units):
            break
    else:
        raise errors.DeliveryChangedConcurrently(
            "the delivery kept changing while the refund's units were restored; nothing was restored, retry",
            details={"order_id": order_id, "product_id": product.id})
    if product.delivers_card_keys:
        _deliver_units(uow, repo, product, order_id)  # a no-op before order-paid (awaiting_payment)
    elif supplier is not None:
        # A reference of its own: the supplier answers the order-paid reference with that first top-up.
        _top_up_owed(uow, repo, product, order_id, supplier, f"{order_id}:{product.id}:{refund_id}")


@dataclass(frozen=True)
class TopUp:
    product_id: str
    product_name: str
    quantity: int
    account: str
    status: str  # pending | delivered
    supplier_reference: str
    delivered_at: datetime | None


def list_deliveries(db: Database, caller: Caller, order_id: str) -> tuple[list[DeliveredKey], list[PendingDelivery],
                                                                       list[TopUp]]:
    """The buyer's view of an order's virtual goods: card keys decrypted, units still waiting for a key,
    and top-ups with the supplier's transaction id (units a refund withdrew are not shown)."""
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        keys = repo.card_keys_of_order(order_id)
        deliveries = repo.deliveries(order_id)
    pending = [PendingDelivery(d.product_id, d.quantity - d.withdrawn - d.delivered)
               for d in deliveries if d.method == "card_key" and d.status == "pending"]
    top_ups = [TopUp(d.product_id, d.product_name, d.quantity - d.withdrawn, d.account or "", d.status,
                     d.supplier_reference or "", d.updated_at if d.status == "delivered" else None)
               for d in deliveries if d.method == "top_up" and d.quantity > d.withdrawn]
    delivered = []
    for row in keys:
        secret = json.loads(crypto.decrypt(row.secret))
        delivered.append(DeliveredKey(row.product_id, row.product_name, row.unit_index, secret["card_number"],
                                      secret["password"], row.allocated_at))
    return delivered, pending, top_ups


@dataclass(frozen=True)
class MaskedKey:
    id: str
    card_number_masked: str
    status: str
    order_id: str
    created_at: datetime
    allocated_at: datetime | None


def list_card_keys(db: Database, caller: Caller, product_id: str, *, limit: int = 0,
                   cursor: str = "") -> tuple[list[MaskedKey], str]:
    """Staff's view of the inventory: masked numbers and status only, oldest first."""
    size = page_size(limit)
    after = decode_cursor(cursor, 2)
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        _card_key_product(repo, product_id)
        rows = repo.card_keys_of_product(product_id, size + 1,
                                         (datetime.fromisoformat(after[0]), str(after[1])) if after else None)
    keys = [MaskedKey(r.id, r.card_number_masked, "allocated" if r.order_id else "available", r.order_id or "",
                      r.created_at, r.allocated_at) for r in rows[:size]]
    next_cursor = encode_cursor(keys[-1].created_at.isoformat(), keys[-1].id) if len(rows) > size else ""
    return keys, next_cursor

