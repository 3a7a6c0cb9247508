"""WithdrawDeliveries: a refund takes undelivered virtual units out of the order's delivery before the money goes
back — also when it runs before order-paid was handled — and never takes back a key already shown."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from weika_catalog.adapters import tables
from weika_catalog.domain import errors
from weika_catalog.service_layer import card_keys, services
from weika_kit.db import Database

STOCK_CHANGED = "weika.catalog.stock-changed.v1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, make_db) -> Database:  # type: ignore[no-untyped-def]
    """The same behaviour on both databases the catalog runs on."""
    if request.param == "sqlite":
        return request.getfixturevalue("db")
    return make_db(request.getfixturevalue("fresh_postgres_database")("catalog_withdrawals"))


def keys(count: int, prefix: str = "card") -> list[card_keys.CardKeyInput]:
    return [card_keys.CardKeyInput(f"{prefix}-{i:04d}-xyz", f"pw-{i}") for i in range(count)]


def card_product(db, make, loaded: int, on_sale: int | None = None):  # type: ignore[no-untyped-def]
    """A card-key product with `loaded` keys; `on_sale` sets the stock by hand (more than the keys)."""
    product = make.product(db, kind="virtual", quantity=on_sale or 0)
    if loaded:
        card_keys.load_card_keys(db, make.shop, product.id, keys(loaded))
    return product


def withdraw(db, make, order_id: str, refund_id: str, *lines) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(w.product_id, w.quantity)
            for w in card_keys.withdraw_deliveries(db, make.shop, order_id, refund_id, list(lines))]


def pay(db, make, product, order_id: str, quantity: int) -> str:  # type: ignore[no-untyped-def]
    """order-paid as the consumer handles it (a new event id each time)."""
    message = make.message(make.paid_topic, make.order_paid(order_id, make.line(product, quantity)))
    return str(make.consumer(db).process(message))


def refunded(db, make, order_id: str, refund_id: str, product, quantity: int) -> str:  # type: ignore[no-untyped-def]
    message = make.message(make.refunded_topic,
                           make.order_refunded(order_id, refund_id, make.line(product, quantity)))
    return str(make.consumer(db).process(message))


def delivery(db: Database, order_id: str, product_id: str):  # type: ignore[no-untyped-def]
    d = tables.deliveries.c
    with db.engine.connect() as conn:
        return conn.execute(select(tables.deliveries).where(d.order_id == order_id, d.product_id == product_id)).first()


def unit_indexes(db, make, order_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [k.unit_index for k in card_keys.list_deliveries(db, make.shop, order_id)[0]]


def consumed_events(db, make, order_id: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for row in make.outbox(db, STOCK_CHANGED) if b"consumed" in row.payload and order_id.encode()
               in row.payload)


def test_a_partial_withdrawal_before_order_paid_leaves_only_the_other_units_to_deliver(store, make):
    card = card_product(store, make, loaded=5)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])  # 5 on sale -> 2

    assert withdraw(store, make, "ord_1", "rfd_1", (card.id, 1)) == [(card.id, 1)]
    assert card_keys.list_deliveries(store, make.shop, "ord_1") == ([], [], [])  # nothing owed before payment
    pay(store, make, card, "ord_1", 3)

    assert unit_indexes(store, make, "ord_1") == [0, 1]
    row = delivery(store, "ord_1", card.id)
    assert (row.quantity, row.delivered, row.withdrawn, row.status) == (3, 2, 1, "delivered")
    assert card_keys.list_deliveries(store, make.shop, "ord_1")[1] == []
    assert services.get_product(store, make.shop, card.id).card_keys_available == 3
    assert consumed_events(store, make, "ord_1") == 1
    # order-refunded, delivered twice under two event ids: the withdrawn unit comes back once
    assert refunded(store, make, "ord_1", "rfd_1", card, 1) == "applied"
    assert refunded(store, make, "ord_1", "rfd_1", card, 1) == "applied"
    assert services.get_product(store, make.shop, card.id).available == 3
    moves, _ = services.list_stock_moves(store, make.shop, card.id)
    assert [(m.reason, m.delta, m.note) for m in moves if m.reason == "refunded"] == [("refunded", 1, "rfd_1")]


def test_a_full_withdrawal_before_order_paid_delivers_nothing_and_restocks_every_unit(store, make):
    card = card_product(store, make, loaded=5)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2)])

    assert withdraw(store, make, "ord_1", "rfd_1", (card.id, 2)) == [(card.id, 2)]
    pay(store, make, card, "ord_1", 2)
    pay(store, make, card, "ord_1", 2)  # order-paid redelivered: still nothing

    assert unit_indexes(store, make, "ord_1") == []
    assert card_keys.list_deliveries(store, make.shop, "ord_1")[1] == []
    assert services.get_product(store, make.shop, card.id).card_keys_available == 5
    assert consumed_events(store, make, "ord_1") == 0
    refunded(store, make, "ord_1", "rfd_1", card, 2)
    refunded(store, make, "ord_1", "rfd_1", card, 2)
    assert services.get_product(store, make.shop, card.id).available == 5


class RecordingSupplier:
    """A top-up supplier that records every call and answers a transaction id per call."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[dict] = []  # type: ignore[type-arg]

    def top_up(self, **request) -> str:  # type: ignore[no-untyped-def]
        self.calls.append(request)
        return f"sup_{len(self.calls)}"


@pytest.fixture
def supplier(monkeypatch) -> RecordingSupplier:  # type: ignore[no-untyped-def]
    """The supplier the order-paid handler tops up through, recording."""
    from weika_catalog.entrypoints import events

    recording = RecordingSupplier()
    monkeypatch.setattr(events, "TOP_UP_SUPPLIER", recording)
    return recording


def test_a_top_up_withdrawn_before_order_paid_is_never_topped_up(db, make, supplier):
    calls = supplier.calls
    credit = make.product(db, kind="virtual", quantity=10, delivery="top_up")
    other = make.product(db, kind="virtual", quantity=10, delivery="top_up")
    services.reserve_stock(db, make.shop, "ord_1", [(credit.id, 2)])
    services.reserve_stock(db, make.shop, "ord_2", [(other.id, 3)])

    withdraw(db, make, "ord_1", "rfd_1", (credit.id, 2))
    withdraw(db, make, "ord_2", "rfd_2", (other.id, 1))
    pay(db, make, credit, "ord_1", 2)
    pay(db, make, other, "ord_2", 3)

    assert [(c["reference"], c["quantity"]) for c in calls] == [(f"ord_2:{other.id}", 2)]
    assert card_keys.list_deliveries(db, make.shop, "ord_1")[2] == []
    [top_up] = card_keys.list_deliveries(db, make.shop, "ord_2")[2]
    assert (top_up.status, top_up.quantity) == ("delivered", 2)
    with pytest.raises(errors.VirtualGoodsDelivered):  # the two performed units cannot be withdrawn
        withdraw(db, make, "ord_2", "rfd_3", (other.id, 1))


def test_withdrawing_units_already_delivered_is_refused_and_changes_nothing(store, make):
    card = card_product(store, make, loaded=5)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2)])
    pay(store, make, card, "ord_1", 2)
    before = delivery(store, "ord_1", card.id)

    with pytest.raises(errors.VirtualGoodsDelivered) as refused:
        withdraw(store, make, "ord_1", "rfd_1", (card.id, 1))

    assert refused.value.code == "virtual_goods_delivered"
    assert refused.value.details == {"product_id": card.id, "delivered": 2, "requested": 1}
    assert card.name in refused.value.message
    assert delivery(store, "ord_1", card.id) == before
    with store.engine.connect() as conn:
        assert conn.execute(select(tables.delivery_withdrawals)).all() == []
    refunded(store, make, "ord_1", "rfd_1", card, 1)  # had the refund gone on anyway, nothing comes back
    assert services.get_product(store, make.shop, card.id).available == 3


def test_a_withdrawal_is_all_or_nothing_across_lines(db, make):
    waiting = card_product(db, make, loaded=0, on_sale=5)  # no keys: its units wait
    served = card_product(db, make, loaded=5)
    services.reserve_stock(db, make.shop, "ord_1", [(waiting.id, 2), (served.id, 1)])
    make.consumer(db).process(make.message(make.paid_topic, make.order_paid(
        "ord_1", make.line(waiting, 2), make.line(served, 1))))

    with pytest.raises(errors.VirtualGoodsDelivered) as refused:
        withdraw(db, make, "ord_1", "rfd_1", (waiting.id, 2), (served.id, 1))

    assert refused.value.details["product_id"] == served.id
    assert delivery(db, "ord_1", waiting.id).withdrawn == 0
    assert [(p.product_id, p.quantity) for p in card_keys.list_deliveries(db, make.shop, "ord_1")[1]] == [
        (waiting.id, 2)]


def test_a_pending_unit_can_be_withdrawn_but_not_more_than_are_undelivered(store, make):
    card = card_product(store, make, loaded=1, on_sale=3)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])
    pay(store, make, card, "ord_1", 3)  # 1 key out, 2 pending

    with pytest.raises(errors.VirtualGoodsDelivered) as refused:
        withdraw(store, make, "ord_1", "rfd_1", (card.id, 3))
    assert refused.value.details == {"product_id": card.id, "delivered": 1, "requested": 3}
    assert withdraw(store, make, "ord_1", "rfd_2", (card.id, 1)) == [(card.id, 1)]

    # loading keys serves only the unit still owed
    result = card_keys.load_card_keys(store, make.shop, card.id, keys(3, prefix="more"))
    assert unit_indexes(store, make, "ord_1") == [0, 1]
    assert result.available == 2
    row = delivery(store, "ord_1", card.id)
    assert (row.delivered, row.withdrawn, row.status) == (2, 1, "delivered")
    assert consumed_events(store, make, "ord_1") == 1


def test_a_repeated_withdrawal_for_the_same_refund_withdraws_once(store, make):
    card = card_product(store, make, loaded=0, on_sale=5)
    cup = make.product(store, kind="physical", quantity=10)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2), (cup.id, 1)])

    first = withdraw(store, make, "ord_1", "rfd_1", (card.id, 1), (cup.id, 1))
    again = withdraw(store, make, "ord_1", "rfd_1", (card.id, 1), (cup.id, 1))

    assert first == again == sorted([(card.id, 1), (cup.id, 0)])
    assert delivery(store, "ord_1", card.id).withdrawn == 1
    assert delivery(store, "ord_1", cup.id) is None  # physical goods are not deliveries
    assert withdraw(store, make, "ord_1", "rfd_2", (card.id, 1)) == [(card.id, 1)]
    assert delivery(store, "ord_1", card.id).withdrawn == 2
    pay(store, make, card, "ord_1", 2)
    assert card_keys.list_deliveries(store, make.shop, "ord_1") == ([], [], [])


def test_a_withdrawal_needs_its_order_and_refund_and_positive_quantities(db, make):
    card = card_product(db, make, loaded=1)
    with pytest.raises(errors.InvalidArgument):
        withdraw(db, make, "ord_1", "", (card.id, 1))
    with pytest.raises(errors.InvalidArgument):
        withdraw(db, make, "ord_1", "rfd_1", (card.id, 0))


def _race(db, make, card, order_id: str, refund_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """order-paid handled twice (by the consumer, and by deliver_order directly: a twin consumer, and the
    lighter of the two so either side can win) against two calls of the same withdrawal, released together."""
    barrier = threading.Barrier(4)
    answers: list[str] = []

    def consume() -> None:
        consumer = make.consumer(db)
        message = make.message(make.paid_topic, make.order_paid(order_id, make.line(card, 3)))
        barrier.wait()
        answers.append(f"paid:{consumer.process(message)}")

    def deliver() -> None:
        barrier.wait()
        with db.unit_of_work() as uow:
            card_keys.deliver_order(uow, make.shop, order_id, [(card.id, 3)])
            uow.commit()
        answers.append("paid:applied")

    def take_back() -> None:
        barrier.wait()
        try:
            answers.append(f"withdrawn:{withdraw(db, make, order_id, refund_id, (card.id, 2))[0][1]}")
        except errors.VirtualGoodsDelivered:
            answers.append("refused")

    threads = [threading.Thread(target=target) for target in (consume, deliver, take_back, take_back)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(answers)


def test_order_paid_racing_a_withdrawal_never_delivers_a_withdrawn_unit(store, make):
    orders = [f"ord_{i}" for i in range(12)]  # the race, repeated on a fresh order each time
    card = card_product(store, make, loaded=3 * len(orders))
    for order_id in orders:
        services.reserve_stock(store, make.shop, order_id, [(card.id, 3)])

    outcomes = {order_id: _race(store, make, card, order_id, f"rfd_{order_id}") for order_id in orders}

    for order_id, answers in outcomes.items():
        row = delivery(store, order_id, card.id)
        allocated = unit_indexes(store, make, order_id)
        assert answers[:2] == ["paid:applied", "paid:applied"], answers
        if answers[2:] == ["withdrawn:2", "withdrawn:2"]:  # the withdrawal came first: one unit left to deliver
            assert (allocated, row.withdrawn) == ([0], 2)
        else:  # order-paid came first: every key shown, the refund refused
            assert answers[2:] == ["refused", "refused"], answers
            assert (allocated, row.withdrawn) == ([0, 1, 2], 0)
        assert len(allocated) + row.withdrawn == row.quantity == 3
        assert (row.delivered, row.status) == (len(allocated), "delivered")
    handed_out = sum(len(unit_indexes(store, make, order_id)) for order_id in orders)
    assert services.get_product(store, make.shop, card.id).card_keys_available == 3 * len(orders) - handed_out


def test_a_withdrawal_of_every_unit_still_waiting_for_a_key_announces_the_goods_delivered_once(store, make):
    card = card_product(store, make, loaded=1, on_sale=3)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])
    pay(store, make, card, "ord_1", 3)  # 1 key out, 2 pending
    assert consumed_events(store, make, "ord_1") == 0

    assert withdraw(store, make, "ord_1", "rfd_1", (card.id, 2)) == [(card.id, 2)]
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))  # the refund asks again

    row = delivery(store, "ord_1", card.id)
    assert (row.delivered, row.withdrawn, row.status) == (1, 2, "delivered")
    assert card_keys.list_deliveries(store, make.shop, "ord_1")[1] == []
    assert consumed_events(store, make, "ord_1") == 1
    card_keys.load_card_keys(store, make.shop, card.id, keys(2, prefix="more"))  # nothing owed: keys stay free
    assert unit_indexes(store, make, "ord_1") == [0]
    assert consumed_events(store, make, "ord_1") == 1


# RestoreDeliveries: a refund refused after its withdrawal gives the units back, once.

def restore(db, make, order_id: str, refund_id: str, **options) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(r.product_id, r.quantity)
            for r in card_keys.restore_deliveries(db, make.shop, order_id, refund_id, **options)]


def test_a_restore_before_order_paid_lets_order_paid_deliver_every_unit(store, make):
    card = card_product(store, make, loaded=5)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))

    assert restore(store, make, "ord_1", "rfd_1") == [(card.id, 2)]
    pay(store, make, card, "ord_1", 3)

    assert unit_indexes(store, make, "ord_1") == [0, 1, 2]
    row = delivery(store, "ord_1", card.id)
    assert (row.quantity, row.delivered, row.withdrawn, row.status) == (3, 3, 0, "delivered")
    assert consumed_events(store, make, "ord_1") == 1
    # an order-refunded of that refund (never sent for a refused one) restocks nothing given back
    refunded(store, make, "ord_1", "rfd_1", card, 2)
    assert services.get_product(store, make.shop, card.id).available == 2


def test_a_restore_after_order_paid_allocates_free_keys_to_the_restored_units_once(store, make):
    card = card_product(store, make, loaded=0, on_sale=2)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2)])
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))
    pay(store, make, card, "ord_1", 2)  # nothing owed
    card_keys.load_card_keys(store, make.shop, card.id, keys(3))  # no delivery waits: all 3 free
    assert consumed_events(store, make, "ord_1") == 0

    first = restore(store, make, "ord_1", "rfd_1")
    again = restore(store, make, "ord_1", "rfd_1")

    assert first == again == [(card.id, 2)]
    assert unit_indexes(store, make, "ord_1") == [0, 1]
    row = delivery(store, "ord_1", card.id)
    assert (row.delivered, row.withdrawn, row.status) == (2, 0, "delivered")
    assert services.get_product(store, make.shop, card.id).card_keys_available == 1
    assert consumed_events(store, make, "ord_1") == 1


def test_restored_units_without_free_keys_wait_and_the_next_load_serves_them(store, make):
    card = card_product(store, make, loaded=1, on_sale=3)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])
    pay(store, make, card, "ord_1", 3)
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))  # completes the delivery: "consumed" once

    assert restore(store, make, "ord_1", "rfd_1") == [(card.id, 2)]

    assert [(p.product_id, p.quantity) for p in card_keys.list_deliveries(store, make.shop, "ord_1")[1]] == [
        (card.id, 2)]
    assert delivery(store, "ord_1", card.id).status == "pending"
    card_keys.load_card_keys(store, make.shop, card.id, keys(2, prefix="more"))
    assert unit_indexes(store, make, "ord_1") == [0, 1, 2]
    assert consumed_events(store, make, "ord_1") == 2  # delivered again once the restored units have keys


def test_a_restore_of_an_unknown_refund_or_of_another_order_restores_nothing(store, make):
    card = card_product(store, make, loaded=0, on_sale=2)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2)])
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 1))

    assert restore(store, make, "ord_1", "rfd_unknown") == []
    assert restore(store, make, "ord_2", "rfd_1") == []
    assert delivery(store, "ord_1", card.id).withdrawn == 1
    with pytest.raises(errors.InvalidArgument):
        restore(store, make, "ord_1", "")


def test_a_restored_refund_never_withdraws_again(store, make):
    card = card_product(store, make, loaded=0, on_sale=3)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 3)])
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))
    restore(store, make, "ord_1", "rfd_1")

    with pytest.raises(errors.WithdrawalRestored) as refused:
        withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))

    assert refused.value.code == "withdrawal_restored"
    assert delivery(store, "ord_1", card.id).withdrawn == 0
    assert withdraw(store, make, "ord_1", "rfd_2", (card.id, 2)) == [(card.id, 2)]  # a new refund may


def test_a_restore_after_the_refund_restocked_its_units_is_refused_and_changes_nothing(store, make):
    card = card_product(store, make, loaded=3)
    services.reserve_stock(store, make.shop, "ord_1", [(card.id, 2)])
    withdraw(store, make, "ord_1", "rfd_1", (card.id, 2))
    pay(store, make, card, "ord_1", 2)
    refunded(store, make, "ord_1", "rfd_1", card, 2)
    before = delivery(store, "ord_1", card.id)

    with pytest.raises(errors.WithdrawalAlreadyRefunded) as refused:
        restore(store, make, "ord_1", "rfd_1")

    assert refused.value.code == "withdrawal_already_refunded"
    assert refused.value.details["product_id"] == card.id
    assert delivery(store, "ord_1", card.id) == before
    assert unit_indexes(store, make, "ord_1") == []
    assert withdraw(store, make, "ord_1", "rfd_1", (card.id, 2)) == [(card.id, 2)]  # not marked restored


def test_a_restored_top_up_is_topped_up_through_the_supplier_under_a_reference_of_its_own(db, make, supplier):
    calls = supplier.calls
    credit = make.product(db, kind="virtual", quantity=10, delivery="top_up")
    services.reserve_stock(db, make.shop, "ord_1", [(credit.id, 3)])
    withdraw(db, make, "ord_1", "rfd_1", (credit.id, 1))
    pay(db, make, credit, "ord_1", 3)  # 2 topped up
    consumed_before = consumed_events(db, make, "ord_1")

    assert restore(db, make, "ord_1", "rfd_1", supplier=supplier) == [(credit.id, 1)]
    restore(db, make, "ord_1", "rfd_1", supplier=supplier)

    assert [(c["reference"], c["quantity"]) for c in calls] == [
        (f"ord_1:{credit.id}", 2), (f"ord_1:{credit.id}:rfd_1", 1)]
    [top_up] = card_keys.list_deliveries(db, make.shop, "ord_1")[2]
    assert (top_up.status, top_up.quantity, top_up.supplier_reference) == ("delivered", 3, "sup_2")
    assert consumed_events(db, make, "ord_1") == consumed_before + 1


@pytest.mark.postgres
def test_racing_restores_of_one_refund_restore_once(make, make_db, fresh_postgres_database):
    db = make_db(fresh_postgres_database("catalog_restore_race"))
    card = card_product(db, make, loaded=0, on_sale=2)
    services.reserve_stock(db, make.shop, "ord_1", [(card.id, 2)])
    withdraw(db, make, "ord_1", "rfd_1", (card.id, 2))
    pay(db, make, card, "ord_1", 2)
    card_keys.load_card_keys(db, make.shop, card.id, keys(4))
    barrier = threading.Barrier(3)
    answers: list[list[tuple[str, int]]] = []

    def restore_now() -> None:
        barrier.wait()
        answers.append(restore(db, make, "ord_1", "rfd_1"))

    threads = [threading.Thread(target=restore_now) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [[(card.id, 2)]] * 3
    assert unit_indexes(db, make, "ord_1") == [0, 1]
    assert services.get_product(db, make.shop, card.id).card_keys_available == 2
    assert consumed_events(db, make, "ord_1") == 1
