"""The catalog over real gRPC: new RPCs translate both ways, refusals keep their codes."""

from __future__ import annotations

import io

import grpc
import pytest
from openpyxl import Workbook

from weika.catalog.v1 import catalog_pb2 as pb
from weika.catalog.v1 import catalog_pb2_grpc
from weika_catalog.bootstrap import registrations
from weika_catalog.service_layer import imports
from weika_kit.errors import RemoteError
from weika_kit.grpc_server import GrpcServer


@pytest.fixture
def stub(db):  # type: ignore[no-untyped-def]
    server = GrpcServer("catalog", "127.0.0.1:0", registrations(db), [], max_workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield catalog_pb2_grpc.CatalogServiceStub(channel)
    channel.close()
    server.stop(0)


def call(make, method, request):  # type: ignore[no-untyped-def]
    return method(request, metadata=make.shop.to_metadata())


def refusal(make, method, request) -> RemoteError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as raised:
        call(make, method, request)
    return RemoteError.from_rpc_error(raised.value)


def test_virtual_product_with_card_keys_sold_and_delivered_over_grpc(db, make, stub):
    category = call(make, stub.CreateCategory, pb.CreateCategoryRequest(name="会员卡"))
    product = call(make, stub.CreateProduct, pb.CreateProductRequest(
        kind="virtual", name="视频会员月卡", category_id=category.id, price=1990,
        stock=pb.StockSpec(mode="limited", quantity=0), purchase_limit=1,
        virtual=pb.VirtualSpec(delivery="card_key", low_stock_threshold=1)))
    loaded = call(make, stub.LoadCardKeys, pb.LoadCardKeysRequest(product_id=product.id, keys=[
        pb.CardKeyInput(card_number="VIP-0001-AAAA", password="p1"),
        pb.CardKeyInput(card_number="VIP-0001-AAAA", password="p1")]))
    assert (loaded.loaded, [r.reason for r in loaded.refused], loaded.card_keys_available) == (1, ["duplicate"], 1)
    seen = call(make, stub.GetProduct, pb.GetProductRequest(product_id=product.id))
    assert (seen.virtual.card_keys_available, seen.virtual.low_on_stock, seen.stock.quantity) == (1, True, 1)
    call(make, stub.ReserveStock, pb.ReserveStockRequest(order_id="ord_1", customer_id="cus_1", lines=[
        pb.ReserveStockLine(product_id=product.id, quantity=1)]))
    make.consumer(db).process(make.message(make.paid_topic, make.order_paid("ord_1", make.line(product, 1))))
    deliveries = call(make, stub.ListDeliveries, pb.ListDeliveriesRequest(order_id="ord_1"))
    assert [(k.card_number, k.password) for k in deliveries.card_keys] == [("VIP-0001-AAAA", "p1")]
    listed = call(make, stub.ListCardKeys, pb.ListCardKeysRequest(product_id=product.id))
    assert [(k.card_number_masked, k.status) for k in listed.keys] == [("VIP-*****AAAA", "allocated")]


def test_refusals_keep_their_codes_over_grpc(db, make, stub):
    category = call(make, stub.CreateCategory, pb.CreateCategoryRequest(name="券"))
    product = call(make, stub.CreateProduct, pb.CreateProductRequest(
        kind="physical", name="杯", category_id=category.id, price=100,
        stock=pb.StockSpec(mode="limited", quantity=5), purchase_limit=1))
    assert refusal(make, stub.DeleteCategory, pb.DeleteCategoryRequest(category_id=category.id)).code == \
        "category_not_empty"
    call(make, stub.ReserveStock, pb.ReserveStockRequest(order_id="ord_1", customer_id="cus_1", lines=[
        pb.ReserveStockLine(product_id=product.id, quantity=1)]))
    limited = refusal(make, stub.ReserveStock, pb.ReserveStockRequest(order_id="ord_2", customer_id="cus_1", lines=[
        pb.ReserveStockLine(product_id=product.id, quantity=1)]))
    assert (limited.code, limited.status) == ("purchase_limit_exceeded", grpc.StatusCode.FAILED_PRECONDITION)
    rate = refusal(make, stub.CreateProduct, pb.CreateProductRequest(
        kind="coupon", name="折", category_id=category.id, price=100, stock=pb.StockSpec(mode="unlimited"),
        coupon=pb.CouponRule(discount_rate=12000, redeem_methods=["qr"],
                             validity=pb.Validity(mode="relative", days=3))))
    assert (rate.code, rate.status) == ("discount_rate_out_of_range", grpc.StatusCode.INVALID_ARGUMENT)


def test_patch_and_list_over_grpc_leave_unset_fields_alone(db, make, stub):
    category = call(make, stub.CreateCategory, pb.CreateCategoryRequest(name="券"))
    product = call(make, stub.CreateProduct, pb.CreateProductRequest(
        kind="physical", name="杯", category_id=category.id, price=100, stock=pb.StockSpec(mode="limited",
                                                                                        quantity=5),
        physical=pb.PhysicalSpec(weight_grams=250, spec="350ml")))
    patched = call(make, stub.UpdateProduct, pb.UpdateProductRequest(product_id=product.id, on_shelf=False,
                                                                      stock_adjustment=2, stock_reason="found"))
    assert (patched.name, patched.price, patched.on_shelf, patched.stock.quantity) == ("杯", 100, False, 7)
    assert patched.physical.spec == "350ml"
    off = call(make, stub.ListProducts, pb.ListProductsRequest(on_shelf=False))
    on = call(make, stub.ListProducts, pb.ListProductsRequest(on_shelf=True))
    assert ([p.id for p in off.products], list(on.products)) == ([product.id], [])
    moves = call(make, stub.ListStockMoves, pb.ListStockMovesRequest(product_id=product.id))
    assert [(m.reason, m.delta, m.note) for m in moves.moves] == [("adjusted", 2, "found"), ("created", 5, "")]
    renamed = call(make, stub.UpdateCategory, pb.UpdateCategoryRequest(category_id=category.id, name="实物"))
    assert (renamed.name, renamed.position) == ("实物", 0)


def test_import_over_grpc_answers_rejected_with_every_row_error(db, make, stub):
    template = call(make, stub.GetImportTemplate, pb.GetImportTemplateRequest())
    assert template.content[:2] == b"PK" and template.filename == imports.TEMPLATE_FILENAME
    book = Workbook()
    book.active.append(list(imports.COLUMN_NAMES))
    book.active.append(["coupon", "x", "", "nope", 100, "limited", 1])
    out = io.BytesIO()
    book.save(out)
    answer = call(make, stub.ImportProducts, pb.ImportProductsRequest(content=out.getvalue()))
    assert answer.rejected and answer.created == 0
    assert [(e.row, e.column) for e in answer.errors] == [(2, "category")]
    report = call(make, stub.GetImportErrors, pb.GetImportErrorsRequest(job_id=answer.job_id))
    assert report.content[:2] == b"PK" and report.filename.endswith(".xlsx")


def test_withdraw_deliveries_over_grpc_answers_per_line_and_refuses_delivered_keys(db, make, stub):
    card = make.product(db, kind="virtual", quantity=0)
    cup = make.product(db, kind="physical", quantity=5)
    call(make, stub.LoadCardKeys, pb.LoadCardKeysRequest(product_id=card.id, keys=[
        pb.CardKeyInput(card_number=f"VIP-000{i}-AAAA", password="p") for i in range(3)]))
    call(make, stub.ReserveStock, pb.ReserveStockRequest(order_id="ord_1", lines=[
        pb.ReserveStockLine(product_id=card.id, quantity=2), pb.ReserveStockLine(product_id=cup.id, quantity=1)]))

    def withdraw(refund_id: str, quantity: int) -> pb.WithdrawDeliveriesRequest:
        return pb.WithdrawDeliveriesRequest(order_id="ord_1", refund_id=refund_id, lines=[
            pb.WithdrawDeliveriesLine(product_id=card.id, quantity=quantity),
            pb.WithdrawDeliveriesLine(product_id=cup.id, quantity=1)])

    answer = call(make, stub.WithdrawDeliveries, withdraw("rfd_1", 1))
    assert sorted((line.product_id, line.quantity) for line in answer.lines) == sorted([(card.id, 1), (cup.id, 0)])
    make.consumer(db).process(make.message(make.paid_topic, make.order_paid(
        "ord_1", make.line(card, 2), make.line(cup, 1))))
    refused = refusal(make, stub.WithdrawDeliveries, withdraw("rfd_2", 1))
    assert (refused.code, refused.status) == ("virtual_goods_delivered", grpc.StatusCode.FAILED_PRECONDITION)
    assert refused.details == {"product_id": card.id, "delivered": "1", "requested": "1"}


def test_restore_deliveries_over_grpc_gives_the_units_back_once_and_refuses_after_the_restock(db, make, stub):
    card = make.product(db, kind="virtual", quantity=0)
    call(make, stub.LoadCardKeys, pb.LoadCardKeysRequest(product_id=card.id, keys=[
        pb.CardKeyInput(card_number=f"VIP-000{i}-AAAA", password="p") for i in range(4)]))
    for order_id in ("ord_1", "ord_2"):
        call(make, stub.ReserveStock, pb.ReserveStockRequest(order_id=order_id, lines=[
            pb.ReserveStockLine(product_id=card.id, quantity=2)]))
        call(make, stub.WithdrawDeliveries, pb.WithdrawDeliveriesRequest(
            order_id=order_id, refund_id=f"rfd_{order_id}", lines=[
                pb.WithdrawDeliveriesLine(product_id=card.id, quantity=1)]))

    answer = call(make, stub.RestoreDeliveries, pb.RestoreDeliveriesRequest(order_id="ord_1", refund_id="rfd_ord_1"))
    assert [(line.product_id, line.quantity) for line in answer.lines] == [(card.id, 1)]
    unknown = call(make, stub.RestoreDeliveries, pb.RestoreDeliveriesRequest(order_id="ord_1", refund_id="rfd_x"))
    assert list(unknown.lines) == []
    again = refusal(make, stub.WithdrawDeliveries, pb.WithdrawDeliveriesRequest(
        order_id="ord_1", refund_id="rfd_ord_1", lines=[pb.WithdrawDeliveriesLine(product_id=card.id, quantity=1)]))
    assert (again.code, again.status) == ("withdrawal_restored", grpc.StatusCode.FAILED_PRECONDITION)
    make.consumer(db).process(make.message(make.refunded_topic, make.order_refunded(
        "ord_2", "rfd_ord_2", make.line(card, 1))))
    refused = refusal(make, stub.RestoreDeliveries, pb.RestoreDeliveriesRequest(
        order_id="ord_2", refund_id="rfd_ord_2"))
    assert (refused.code, refused.status) == ("withdrawal_already_refunded", grpc.StatusCode.FAILED_PRECONDITION)
