"""order-refunded: physical goods come back to stock once per refund; coupons and delivered keys do not."""

from __future__ import annotations

from weika_catalog.service_layer import card_keys, services


def paid(db, make, product, order_id: str, quantity: int) -> None:  # type: ignore[no-untyped-def]
    services.reserve_stock(db, make.shop, order_id, [(product.id, quantity)])
    make.consumer(db).process(make.message(make.paid_topic, make.order_paid(order_id, make.line(product, quantity))))


def refund(db, make, order_id: str, refund_id: str, *lines) -> str:  # type: ignore[no-untyped-def]
    return make.consumer(db).process(make.message(make.refunded_topic,
                                                  make.order_refunded(order_id, refund_id, *lines)))


def test_refunded_physical_goods_come_back_once_even_when_the_refund_arrives_twice(db, make):
    cup = make.product(db, kind="physical", quantity=10)
    paid(db, make, cup, "ord_1", 3)
    assert refund(db, make, "ord_1", "rfd_1", make.line(cup, 2)) == "applied"
    assert refund(db, make, "ord_1", "rfd_1", make.line(cup, 2)) == "applied"  # another event id, same refund
    assert services.get_product(db, make.shop, cup.id).available == 9
    moves, _ = services.list_stock_moves(db, make.shop, cup.id)
    assert (moves[0].reason, moves[0].delta, moves[0].order_id, moves[0].note) == ("refunded", 2, "ord_1", "rfd_1")
    refund(db, make, "ord_1", "rfd_2", make.line(cup, 1))
    assert services.get_product(db, make.shop, cup.id).available == 10


def test_refunded_coupons_are_not_restocked(db, make):
    coupon = make.product(db, kind="coupon", quantity=10)
    paid(db, make, coupon, "ord_1", 2)
    refund(db, make, "ord_1", "rfd_1", make.line(coupon, 2))
    assert services.get_product(db, make.shop, coupon.id).available == 8


def test_a_refunded_card_key_already_shown_stays_spent_but_a_withdrawn_unit_comes_back(db, make):
    card = make.product(db, kind="virtual", quantity=2)  # two units on sale, one key behind them
    card_keys.load_card_keys(db, make.shop, card.id, [card_keys.CardKeyInput("card-0001-xyz", "pw")])
    paid(db, make, card, "ord_1", 3)  # 3 units: 1 key out, 2 pending
    card_keys.withdraw_deliveries(db, make.shop, "ord_1", "rfd_1", [(card.id, 2)])  # before the money goes back
    refund(db, make, "ord_1", "rfd_1", make.line(card, 2))
    keys, pending, _ = card_keys.list_deliveries(db, make.shop, "ord_1")
    assert (len(keys), pending) == (1, [])
    assert services.get_product(db, make.shop, card.id).available == 2


def test_a_virtual_refund_that_withdrew_nothing_restocks_nothing(db, make):
    card = make.product(db, kind="virtual", quantity=2)
    card_keys.load_card_keys(db, make.shop, card.id, [card_keys.CardKeyInput("card-0001-xyz", "pw")])
    paid(db, make, card, "ord_1", 1)
    refund(db, make, "ord_1", "rfd_1", make.line(card, 1))
    assert services.get_product(db, make.shop, card.id).available == 2  # 2 + 1 key loaded - 1 sold
    assert len(card_keys.list_deliveries(db, make.shop, "ord_1")[0]) == 1
