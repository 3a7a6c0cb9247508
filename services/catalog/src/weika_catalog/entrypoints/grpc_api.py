"""The catalog's gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from weika.catalog.v1 import catalog_pb2 as pb
from weika.catalog.v1 import catalog_pb2_grpc
from weika_catalog.domain.model import CouponRule, Product, Validity
from weika_catalog.service_layer import services
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import from_timestamp, to_timestamp


def rule_to_pb(rule: CouponRule | None) -> pb.CouponRule | None:
    if rule is None:
        return None
    v = rule.validity
    return pb.CouponRule(
        face_value=rule.face_value, threshold=rule.threshold, store_ids=list(rule.store_ids),
        redeem_methods=list(rule.redeem_methods),
        validity=pb.Validity(mode=v.mode, days=v.days, starts_after_days=v.starts_after_days,
                             starts_at=to_timestamp(v.starts_at), ends_at=to_timestamp(v.ends_at)))


def rule_from_pb(rule: pb.CouponRule) -> CouponRule:
    v = rule.validity
    return CouponRule(
        face_value=rule.face_value, threshold=rule.threshold, store_ids=tuple(rule.store_ids),
        redeem_methods=tuple(rule.redeem_methods),
        validity=Validity(mode=v.mode, days=v.days, starts_after_days=v.starts_after_days,
                          starts_at=from_timestamp(v.starts_at, present=v.HasField("starts_at")),
                          ends_at=from_timestamp(v.ends_at, present=v.HasField("ends_at"))))


def product_to_pb(p: Product) -> pb.Product:
    return pb.Product(
        id=p.id, kind=p.kind, name=p.name, description=p.description, category_id=p.category_id, price=p.price,
        on_shelf=p.on_shelf, stock=pb.StockSpec(mode=p.stock_mode, quantity=p.available or 0),
        reserved=p.reserved, coupon=rule_to_pb(p.coupon), created_at=to_timestamp(p.created_at),
        updated_at=to_timestamp(p.updated_at))


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    def CreateCategory(self, request: pb.CreateCategoryRequest, context) -> pb.Category:  # noqa: N802
        row = services.create_category(self.db, require_caller(), request.name, request.parent_id)
        return pb.Category(id=row["id"], name=row["name"], parent_id=row["parent_id"] or "",
                           created_at=to_timestamp(row["created_at"]))

    def ListCategories(self, request, context) -> pb.ListCategoriesResponse:  # noqa: N802
        rows = services.list_categories(self.db, require_caller())
        return pb.ListCategoriesResponse(categories=[
            pb.Category(id=r.id, name=r.name, parent_id=r.parent_id or "", created_at=to_timestamp(r.created_at))
            for r in rows])

    def CreateProduct(self, request: pb.CreateProductRequest, context) -> pb.Product:  # noqa: N802
        new = services.NewProduct(
            kind=request.kind, name=request.name, description=request.description,
            category_id=request.category_id, price=request.price, stock_mode=request.stock.mode,
            quantity=request.stock.quantity,
            coupon=rule_from_pb(request.coupon) if request.HasField("coupon") else None)
        return product_to_pb(services.create_product(self.db, require_caller(), new))

    def GetProduct(self, request: pb.GetProductRequest, context) -> pb.Product:  # noqa: N802
        return product_to_pb(services.get_product(self.db, require_caller(), request.product_id))

    def ReserveStock(self, request: pb.ReserveStockRequest, context) -> pb.ReserveStockResponse:  # noqa: N802
        lines = services.reserve_stock(self.db, require_caller(), request.order_id,
                                       [(line.product_id, line.quantity) for line in request.lines])
        return pb.ReserveStockResponse(lines=[
            pb.ReservedLine(product_id=r.product.id, product_name=r.product.name, product_kind=r.product.kind,
                            category_id=r.product.category_id, quantity=r.quantity, unit_price=r.product.price,
                            coupon=rule_to_pb(r.product.coupon))
            for r in lines])

    def ReleaseStock(self, request: pb.ReleaseStockRequest, context) -> pb.ReleaseStockResponse:  # noqa: N802
        caller = require_caller()
        with self.db.unit_of_work() as uow:
            released = services.release_stock(uow, caller, request.order_id, request.reason)
            uow.commit()
        return pb.ReleaseStockResponse(released=released)
