"""Card keys (卡密): loaded encrypted without duplicates, masked for staff, one per paid unit exactly once,
a recoverable pending state when they run out, and the buyer's decrypted view."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from weika_catalog.adapters import tables
from weika_catalog.domain import errors
from weika_catalog.service_layer import card_keys, services
from weika_kit.errors import InvalidArgument

KEYS = [card_keys.CardKeyInput(f"6222020200112233{i:04d}", f"pw-{i}") for i in range(5)]


def load(db, make, product, keys=KEYS):  # type: ignore[no-untyped-def]
    return card_keys.load_card_keys(db, make.shop, product.id, list(keys))


def sell(db, make, product, order_id: str, quantity: int = 1) -> None:  # type: ignore[no-untyped-def]
    """Reserve, then deliver order-paid through the consumer (a new event id each time)."""
    services.reserve_stock(db, make.shop, order_id, [(product.id, quantity)])
    paid = make.order_paid(order_id, make.line(product, quantity))
    assert make.consumer(db).process(make.message(make.paid_topic, paid)) == "applied"


def delivered(db, make, order_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [k.card_number for k in card_keys.list_deliveries(db, make.shop, order_id)[0]]


def test_loaded_keys_are_encrypted_at_rest_and_add_to_stock(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    result = load(db, make, product)
    assert (result.loaded, result.refused, result.available) == (5, [], 5)
    with db.engine.connect() as conn:
        stored = conn.execute(select(tables.card_keys.c.secret, tables.card_keys.c.fingerprint)).all()
    assert not any(KEYS[0].card_number in row.secret or "pw-0" in row.secret for row in stored)
    after = services.get_product(db, make.shop, product.id)
    assert (after.available, after.card_keys_available) == (5, 5)
    assert services.list_stock_moves(db, make.shop, product.id)[0][0].reason == "card_keys_loaded"


def test_duplicates_within_a_load_and_of_loaded_keys_are_refused_and_reported(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product, KEYS[:2])
    again = [KEYS[1], KEYS[2], card_keys.CardKeyInput(KEYS[2].card_number, "other password"),
             card_keys.CardKeyInput("", "x")]
    result = load(db, make, product, again)
    assert result.loaded == 1
    assert [(r.index, r.reason) for r in result.refused] == [(0, "duplicate"), (2, "duplicate"), (3, "invalid")]
    assert result.refused[0].card_number_masked == "6222************0001"
    assert result.available == 3


def test_the_same_key_may_be_loaded_for_two_different_products(db, make):
    first = make.product(db, kind="virtual", quantity=0)
    second = make.product(db, kind="virtual", quantity=0)
    assert load(db, make, first, KEYS[:1]).loaded == load(db, make, second, KEYS[:1]).loaded == 1


def test_staff_see_keys_masked_only(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product)
    sell(db, make, product, "ord_1")
    keys, _ = card_keys.list_card_keys(db, make.shop, product.id)
    assert [k.status for k in keys] == ["allocated"] + ["available"] * 4
    assert keys[0].order_id == "ord_1"
    assert all("*" in k.card_number_masked and "pw" not in k.card_number_masked for k in keys)


def test_keys_go_only_to_card_key_products(db, make):
    cup = make.product(db, kind="physical")
    with pytest.raises(errors.NotACardKeyProduct):
        load(db, make, cup)
    with pytest.raises(InvalidArgument):
        load(db, make, make.product(db, kind="virtual", quantity=0), [])


def test_each_paid_unit_gets_one_key_and_the_buyer_sees_it_decrypted(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product)
    sell(db, make, product, "ord_1", quantity=2)
    sell(db, make, product, "ord_2", quantity=1)
    first, second = delivered(db, make, "ord_1"), delivered(db, make, "ord_2")
    loaded = {k.card_number: k.password for k in KEYS}
    assert len(first) == 2 and len(second) == 1 and len(set(first + second)) == 3 and set(first + second) <= set(loaded)
    [key] = card_keys.list_deliveries(db, make.shop, "ord_2")[0]
    assert (key.password, key.unit_index, key.product_name) == (loaded[key.card_number], 0, product.name)
    assert services.get_product(db, make.shop, product.id).card_keys_available == 2
    consumed = [row for row in make.outbox(db, "weika.catalog.stock-changed.v1")
                if b"consumed" in row.payload]
    assert len(consumed) == 2  # one "goods delivered" per order, only once its keys are out


def test_order_paid_delivered_twice_with_different_event_ids_allocates_once(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product)
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 2)])
    paid = make.order_paid("ord_1", make.line(product, 2))
    consumer = make.consumer(db)
    assert consumer.process(make.message(make.paid_topic, paid)) == "applied"
    assert consumer.process(make.message(make.paid_topic, paid)) == "applied"  # new id: not deduplicated by inbox
    assert len(delivered(db, make, "ord_1")) == 2
    assert services.get_product(db, make.shop, product.id).card_keys_available == 3


def test_running_out_leaves_the_order_pending_until_keys_are_loaded(db, make):
    product = make.product(db, kind="virtual", quantity=3)  # stock set by hand, only one key behind it
    load(db, make, product, KEYS[:1])
    sell(db, make, product, "ord_1", quantity=3)
    keys, pending, _ = card_keys.list_deliveries(db, make.shop, "ord_1")
    assert (len(keys), [(p.product_id, p.quantity) for p in pending]) == (1, [(product.id, 2)])
    available_before = services.get_product(db, make.shop, product.id).available
    result = load(db, make, product, KEYS[1:4])
    keys, pending, _ = card_keys.list_deliveries(db, make.shop, "ord_1")
    assert [k.unit_index for k in keys] == [0, 1, 2] and pending == []
    assert result.available == 1
    # two of the three new keys went to the waiting order: only one is new stock
    assert services.get_product(db, make.shop, product.id).available == available_before + 1


def test_another_merchant_sees_no_deliveries_of_an_order(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product)
    sell(db, make, product, "ord_1")
    assert card_keys.list_deliveries(db, make.rival, "ord_1") == ([], [], [])


def _race_two_consumers(db, make, product, order_id: str) -> None:  # type: ignore[no-untyped-def]
    paid = make.order_paid(order_id, make.line(product, 2))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def deliver() -> None:
        consumer = make.consumer(db)
        barrier.wait()
        outcomes.append(consumer.process(make.message(make.paid_topic, paid)))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["applied", "applied"]


def test_two_racing_consumers_on_sqlite_deliver_one_key_per_unit(db, make):
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product)
    services.reserve_stock(db, make.shop, "ord_1", [(product.id, 2)])
    _race_two_consumers(db, make, product, "ord_1")
    assert len(delivered(db, make, "ord_1")) == 2
    assert services.get_product(db, make.shop, product.id).card_keys_available == 3


@pytest.mark.postgres
def test_two_racing_consumers_on_postgres_deliver_one_key_per_unit(fresh_postgres_database, make_db, make):
    db = make_db(fresh_postgres_database("catalog_keys"))
    product = make.product(db, kind="virtual", quantity=0)
    load(db, make, product, [card_keys.CardKeyInput(f"card{i:04d}xxxx", f"pw{i}") for i in range(40)])
    orders = [f"ord_{i}" for i in range(10)]
    for order_id in orders:
        services.reserve_stock(db, make.shop, order_id, [(product.id, 2)])
    threads = [threading.Thread(target=_race_two_consumers, args=(db, make, product, order_id))
               for order_id in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed_out = [number for order_id in orders for number in delivered(db, make, order_id)]
    assert len(handed_out) == 20 and len(set(handed_out)) == 20
    assert services.get_product(db, make.shop, product.id).card_keys_available == 20


def test_a_top_up_line_is_topped_up_once_through_the_supplier(db, make, monkeypatch):
    from weika_catalog.entrypoints import events

    calls: list[dict] = []

    class RecordingSupplier:
        name = "recording"

        def top_up(self, **request) -> str:  # type: ignore[no-untyped-def]
            calls.append(request)
            return "sup_1"

    monkeypatch.setattr(events, "TOP_UP_SUPPLIER", RecordingSupplier())
    phone_credit = make.product(db, kind="virtual", quantity=10, delivery="top_up")
    services.reserve_stock(db, make.shop, "ord_1", [(phone_credit.id, 2)])
    paid = make.order_paid("ord_1", make.line(phone_credit, 2))
    paid.customer.customer_id = "cus_buyer"
    for _ in range(2):  # redelivered under a new event id
        make.consumer(db).process(make.message(make.paid_topic, paid))
    assert calls == [{"sku": "sku_1", "account": "cus_buyer", "quantity": 2, "reference": f"ord_1:{phone_credit.id}"}]
    keys, pending, [top_up] = card_keys.list_deliveries(db, make.shop, "ord_1")
    assert (keys, pending) == ([], [])
    assert (top_up.status, top_up.supplier_reference, top_up.quantity, top_up.account) == (
        "delivered", "sup_1", 2, "cus_buyer")


def test_the_simulated_supplier_answers_the_same_reference_with_the_same_transaction():
    from weika_catalog.adapters.supplier import SimulatedSupplier

    supplier = SimulatedSupplier()
    first = supplier.top_up(sku="cm_50", account="138", quantity=1, reference="ord_1:prd_1")
    assert first == supplier.top_up(sku="cm_50", account="138", quantity=1, reference="ord_1:prd_1")
    assert first != supplier.top_up(sku="cm_50", account="138", quantity=1, reference="ord_2:prd_1")
