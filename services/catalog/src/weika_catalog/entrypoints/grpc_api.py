"""The catalog's gRPC servicer: translates protobuf to use-case calls and back."""

from __future__ import annotations

from typing import Any

from weika.catalog.v1 import catalog_pb2 as pb
from weika.catalog.v1 import catalog_pb2_grpc
from weika_catalog.adapters.supplier import TopUpSupplier, configured_supplier
from weika_catalog.domain.model import CouponRule, PhysicalSpec, Product, UsageWindow, Validity, VirtualSpec
from weika_catalog.service_layer import card_keys, images, imports, services
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
                             starts_at=to_timestamp(v.starts_at), ends_at=to_timestamp(v.ends_at)),
        discount_rate=rule.discount_rate, max_discount=rule.max_discount,
        usage_windows=[pb.UsageWindow(weekdays=list(w.weekdays), start_hour=w.start_hour, end_hour=w.end_hour)
                       for w in rule.usage_windows],
        max_uses=rule.max_uses)


def rule_from_pb(rule: pb.CouponRule) -> CouponRule:
    v = rule.validity
    return CouponRule(
        face_value=rule.face_value, threshold=rule.threshold, store_ids=tuple(rule.store_ids),
        redeem_methods=tuple(rule.redeem_methods),
        validity=Validity(mode=v.mode, days=v.days, starts_after_days=v.starts_after_days,
                          starts_at=from_timestamp(v.starts_at, present=v.HasField("starts_at")),
                          ends_at=from_timestamp(v.ends_at, present=v.HasField("ends_at"))),
        discount_rate=rule.discount_rate, max_discount=rule.max_discount,
        usage_windows=tuple(UsageWindow(tuple(w.weekdays), w.start_hour, w.end_hour) for w in rule.usage_windows),
        max_uses=rule.max_uses or 1)


def product_to_pb(p: Product) -> pb.Product:
    message = pb.Product(
        id=p.id, kind=p.kind, name=p.name, description=p.description, category_id=p.category_id, price=p.price,
        on_shelf=p.on_shelf, stock=pb.StockSpec(mode=p.stock_mode, quantity=p.available or 0),
        reserved=p.reserved, coupon=rule_to_pb(p.coupon), created_at=to_timestamp(p.created_at),
        updated_at=to_timestamp(p.updated_at), purchase_limit=p.purchase_limit)
    if p.virtual is not None:
        message.virtual.CopyFrom(pb.VirtualSpec(
            delivery=p.virtual.delivery, low_stock_threshold=p.virtual.low_stock_threshold,
            supplier_sku=p.virtual.supplier_sku, card_keys_available=p.card_keys_available,
            low_on_stock=p.delivers_card_keys and p.card_keys_available <= p.virtual.low_stock_threshold))
    if p.physical is not None:
        message.physical.CopyFrom(pb.PhysicalSpec(weight_grams=p.physical.weight_grams, spec=p.physical.spec))
    return message


def category_to_pb(row: Any) -> pb.Category:
    return pb.Category(id=row.id, name=row.name, parent_id=row.parent_id or "", position=row.position,
                       created_at=to_timestamp(row.created_at))


def image_to_pb(image: images.Image) -> pb.ProductImage:
    return pb.ProductImage(id=image.id, product_id=image.product_id, content_type=image.content_type,
                           size=image.size, width=image.width, height=image.height, sha256=image.sha256,
                           position=image.position, created_at=to_timestamp(image.created_at))


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, db: Database, supplier: TopUpSupplier | None = None):
        self.db = db
        self.supplier = supplier or configured_supplier()  # RestoreDeliveries tops up restored units

    def _with_images(self, *products: Product) -> list[pb.Product]:
        """The products' messages listing their images (one query for all of them)."""
        found = images.images_of(self.db, require_caller(), [p.id for p in products])
        messages = []
        for product in products:
            message = product_to_pb(product)
            message.images.extend(image_to_pb(i) for i in found.get(product.id, ()))
            messages.append(message)
        return messages

    def CreateCategory(self, request: pb.CreateCategoryRequest, context) -> pb.Category:  # noqa: N802
        row = services.create_category(self.db, require_caller(), request.name, request.parent_id)
        return pb.Category(id=row["id"], name=row["name"], parent_id=row["parent_id"] or "",
                           position=row["position"], created_at=to_timestamp(row["created_at"]))

    def ListCategories(self, request, context) -> pb.ListCategoriesResponse:  # noqa: N802
        rows = services.list_categories(self.db, require_caller())
        return pb.ListCategoriesResponse(categories=[category_to_pb(r) for r in rows])

    def UpdateCategory(self, request: pb.UpdateCategoryRequest, context) -> pb.Category:  # noqa: N802
        row = services.update_category(self.db, require_caller(), request.category_id,
                                       name=_optional(request, "name"), position=_optional(request, "position"))
        return category_to_pb(row)

    def DeleteCategory(self, request: pb.DeleteCategoryRequest, context) -> pb.DeleteCategoryResponse:  # noqa: N802
        services.delete_category(self.db, require_caller(), request.category_id)
        return pb.DeleteCategoryResponse()

    def CreateProduct(self, request: pb.CreateProductRequest, context) -> pb.Product:  # noqa: N802
        virtual = request.virtual if request.HasField("virtual") else None
        physical = request.physical if request.HasField("physical") else None
        new = services.NewProduct(
            kind=request.kind, name=request.name, description=request.description,
            category_id=request.category_id, price=request.price, stock_mode=request.stock.mode,
            quantity=request.stock.quantity,
            coupon=rule_from_pb(request.coupon) if request.HasField("coupon") else None,
            virtual=VirtualSpec(virtual.delivery, virtual.low_stock_threshold, virtual.supplier_sku)
            if virtual is not None else None,
            physical=PhysicalSpec(physical.weight_grams, physical.spec) if physical is not None else None,
            purchase_limit=request.purchase_limit)
        return product_to_pb(services.create_product(self.db, require_caller(), new))

    def GetProduct(self, request: pb.GetProductRequest, context) -> pb.Product:  # noqa: N802
        return self._with_images(services.get_product(self.db, require_caller(), request.product_id))[0]

    def ListProducts(self, request: pb.ListProductsRequest, context) -> pb.ListProductsResponse:  # noqa: N802
        where = services.ProductFilter(kind=request.kind, category_id=request.category_id,
                                       on_shelf=_optional(request, "on_shelf"), text=request.text)
        products, next_cursor = services.list_products(self.db, require_caller(), where, limit=request.limit,
                                                       cursor=request.cursor)
        return pb.ListProductsResponse(products=self._with_images(*products), next_cursor=next_cursor)

    def UpdateProduct(self, request: pb.UpdateProductRequest, context) -> pb.Product:  # noqa: N802
        changes = services.ProductChanges(
            name=_optional(request, "name"), description=_optional(request, "description"),
            price=_optional(request, "price"), on_shelf=_optional(request, "on_shelf"),
            category_id=_optional(request, "category_id"), purchase_limit=_optional(request, "purchase_limit"),
            low_stock_threshold=_optional(request, "low_stock_threshold"),
            coupon=rule_from_pb(request.coupon) if request.HasField("coupon") else None,
            stock_adjustment=request.stock_adjustment, stock_reason=request.stock_reason)
        return self._with_images(services.update_product(self.db, require_caller(), request.product_id,
                                                         changes))[0]

    def ListStockMoves(self, request: pb.ListStockMovesRequest, context) -> pb.ListStockMovesResponse:  # noqa: N802
        moves, next_cursor = services.list_stock_moves(self.db, require_caller(), request.product_id,
                                                       limit=request.limit, cursor=request.cursor)
        return pb.ListStockMovesResponse(next_cursor=next_cursor, moves=[
            pb.StockMove(id=m.id, product_id=m.product_id, order_id=m.order_id, delta=m.delta, reason=m.reason,
                         actor=m.actor, note=m.note, created_at=to_timestamp(m.created_at)) for m in moves])

    def ReserveStock(self, request: pb.ReserveStockRequest, context) -> pb.ReserveStockResponse:  # noqa: N802
        lines = services.reserve_stock(self.db, require_caller(), request.order_id,
                                       [(line.product_id, line.quantity) for line in request.lines],
                                       customer_id=request.customer_id)
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

    def LoadCardKeys(self, request: pb.LoadCardKeysRequest, context) -> pb.LoadCardKeysResponse:  # noqa: N802
        result = card_keys.load_card_keys(self.db, require_caller(), request.product_id, [
            card_keys.CardKeyInput(k.card_number, k.password) for k in request.keys])
        return pb.LoadCardKeysResponse(
            loaded=result.loaded, card_keys_available=result.available,
            refused=[pb.RefusedCardKey(index=r.index, card_number_masked=r.card_number_masked, reason=r.reason)
                     for r in result.refused])

    def ListCardKeys(self, request: pb.ListCardKeysRequest, context) -> pb.ListCardKeysResponse:  # noqa: N802
        keys, next_cursor = card_keys.list_card_keys(self.db, require_caller(), request.product_id,
                                                     limit=request.limit, cursor=request.cursor)
        return pb.ListCardKeysResponse(next_cursor=next_cursor, keys=[
            pb.CardKey(id=k.id, card_number_masked=k.card_number_masked, status=k.status, order_id=k.order_id,
                       created_at=to_timestamp(k.created_at), allocated_at=to_timestamp(k.allocated_at))
            for k in keys])

    def ListDeliveries(self, request: pb.ListDeliveriesRequest, context) -> pb.ListDeliveriesResponse:  # noqa: N802
        delivered, pending, top_ups = card_keys.list_deliveries(self.db, require_caller(), request.order_id)
        return pb.ListDeliveriesResponse(
            card_keys=[pb.DeliveredCardKey(product_id=k.product_id, product_name=k.product_name,
                                           unit_index=k.unit_index, card_number=k.card_number,
                                           password=k.password, delivered_at=to_timestamp(k.delivered_at))
                       for k in delivered],
            pending=[pb.PendingDelivery(product_id=p.product_id, quantity=p.quantity) for p in pending],
            top_ups=[pb.TopUpDelivery(product_id=t.product_id, product_name=t.product_name, quantity=t.quantity,
                                      account=t.account, status=t.status, supplier_reference=t.supplier_reference,
                                      delivered_at=to_timestamp(t.delivered_at)) for t in top_ups])

    def WithdrawDeliveries(self, request: pb.WithdrawDeliveriesRequest,  # noqa: N802
                           context) -> pb.WithdrawDeliveriesResponse:
        withdrawn = card_keys.withdraw_deliveries(self.db, require_caller(), request.order_id, request.refund_id,
                                                  [(line.product_id, line.quantity) for line in request.lines])
        return pb.WithdrawDeliveriesResponse(lines=[
            pb.WithdrawDeliveriesLine(product_id=w.product_id, quantity=w.quantity) for w in withdrawn])

    def RestoreDeliveries(self, request: pb.RestoreDeliveriesRequest,  # noqa: N802
                          context) -> pb.RestoreDeliveriesResponse:
        restored = card_keys.restore_deliveries(self.db, require_caller(), request.order_id, request.refund_id,
                                                supplier=self.supplier)
        return pb.RestoreDeliveriesResponse(lines=[
            pb.WithdrawDeliveriesLine(product_id=r.product_id, quantity=r.quantity) for r in restored])

    def GetImportTemplate(self, request, context) -> pb.FileContent:  # noqa: N802
        return pb.FileContent(filename=imports.TEMPLATE_FILENAME, content_type=imports.XLSX,
                              content=imports.template())

    def ImportProducts(self, request: pb.ImportProductsRequest, context) -> pb.ImportProductsResponse:  # noqa: N802
        job_id, product_ids, found = imports.import_products(self.db, require_caller(), request.content,
                                                             list(request.known_store_ids))
        return pb.ImportProductsResponse(
            job_id=job_id, created=len(product_ids), product_ids=product_ids, rejected=bool(found),
            errors=[pb.ImportRowError(row=e["row"], column=e["column"], message=e["message"]) for e in found])

    def GetImportErrors(self, request: pb.GetImportErrorsRequest, context) -> pb.FileContent:  # noqa: N802
        return pb.FileContent(filename=f"import-{request.job_id}-errors.xlsx", content_type=imports.XLSX,
                              content=imports.error_report(self.db, require_caller(), request.job_id))

    def AddProductImage(self, request: pb.AddProductImageRequest, context) -> pb.AddProductImageResponse:  # noqa: N802
        image, created = images.add_image(self.db, require_caller(), request.product_id, request.content,
                                          request.declared_content_type)
        return pb.AddProductImageResponse(image=image_to_pb(image), created=created)

    def GetProductImage(self, request: pb.GetProductImageRequest, context) -> pb.ProductImageContent:  # noqa: N802
        image, content = images.get_image(self.db, require_caller(), request.product_id, request.image_id,
                                          list(request.if_none_match))
        return pb.ProductImageContent(image=image_to_pb(image), content=content or b"",
                                      not_modified=content is None)

    def DeleteProductImage(self, request: pb.DeleteProductImageRequest,  # noqa: N802
                           context) -> pb.DeleteProductImageResponse:
        images.delete_image(self.db, require_caller(), request.product_id, request.image_id)
        return pb.DeleteProductImageResponse()
