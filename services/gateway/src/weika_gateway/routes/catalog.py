"""Categories and products, served by the catalog service; the gateway checks the store ids it owns."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from weika.catalog.v1 import catalog_pb2
from weika_gateway import serializers
from weika_gateway.adapters.repository import StoreRepository
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.errors import GatewayError
from weika_gateway.routes import body_fields, check_stores_known
from weika_gateway.state import state
from weika_gateway.validation import INT32_MAX, Fields, digits, invalid
from weika_kit.context import Caller
from weika_kit.errors import RemoteError
from weika_kit.protos import to_timestamp

bp = Blueprint("catalog", __name__, url_prefix="/v1")

PRODUCT_KINDS = ("coupon", "virtual", "physical")
STOCK_MODES = ("limited", "unlimited")
VALIDITY_MODES = ("relative", "fixed")
DELIVERY_MODES = ("card_key", "top_up")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_CARD_KEYS = 10_000


@bp.post("/categories")
@api_key_required
def create_category() -> tuple[dict[str, Any], int]:
    fields = body_fields()
    request = catalog_pb2.CreateCategoryRequest(name=fields.text("name", max_length=100),
                                                parent_id=fields.optional_text("parent_id", max_length=64) or "")
    return serializers.category(state().clients.create_category(current_caller(), request)), 201


@bp.get("/categories")
@api_key_required
def list_categories() -> dict[str, Any]:
    """Sorted by position; `?view=tree` nests children under their parent, the default is flat with parent_id."""
    view = request.args.get("view", "flat")
    if view not in ("flat", "tree"):
        raise invalid("view", "must be flat or tree", "choice", choices=["flat", "tree"])
    answer = state().clients.list_categories(current_caller())
    flat = [serializers.category(c) for c in answer.categories]
    if view == "flat":
        return {"data": flat}
    tops = [{**c, "children": []} for c in flat if c["parent_id"] is None]
    by_id = {c["id"]: c for c in tops}
    for child in flat:
        if child["parent_id"] in by_id:
            by_id[child["parent_id"]]["children"].append(child)
    return {"data": tops}


@bp.patch("/categories/<category_id>")
@api_key_required
def update_category(category_id: str) -> dict[str, Any]:
    """Rename (`name`) and/or reorder (`position`, ascending among siblings)."""
    fields = body_fields()
    update = catalog_pb2.UpdateCategoryRequest(category_id=category_id)
    name = fields.optional_text("name", max_length=100)
    if name is not None:
        update.name = name
    position = fields.optional_integer("position", maximum=INT32_MAX)
    if position is not None:
        update.position = position
    return serializers.category(state().clients.catalog(current_caller(), "UpdateCategory", update))


@bp.delete("/categories/<category_id>")
@api_key_required
def delete_category(category_id: str) -> tuple[str, int]:
    """Only an empty category (no products, no children); otherwise 409 category_not_empty."""
    state().clients.catalog(current_caller(), "DeleteCategory",
                            catalog_pb2.DeleteCategoryRequest(category_id=category_id))
    return "", 204


def _validity(fields: Fields) -> catalog_pb2.Validity:
    mode = fields.text("mode", choices=VALIDITY_MODES)
    if mode == "relative":
        return catalog_pb2.Validity(
            mode=mode, days=fields.integer("days", maximum=INT32_MAX),
            starts_after_days=fields.optional_integer("starts_after_days", maximum=INT32_MAX) or 0)
    return catalog_pb2.Validity(mode=mode, starts_at=to_timestamp(fields.instant("starts_at")),
                                ends_at=to_timestamp(fields.instant("ends_at")))


def _usage_window(fields: Fields) -> catalog_pb2.UsageWindow:
    weekdays = fields.array("weekdays", min_items=1, max_items=7)
    if any(isinstance(d, bool) or not isinstance(d, int) for d in weekdays):
        raise invalid(fields.field("weekdays"), "must be integers from 1 (Monday) to 7 (Sunday)", "type",
                      expected="integer")
    return catalog_pb2.UsageWindow(
        weekdays=weekdays, start_hour=fields.optional_integer("start_hour", maximum=24) or 0,
        end_hour=fields.optional_integer("end_hour", maximum=24) or 24)


def _coupon_rule(fields: Fields, caller: Caller) -> catalog_pb2.CouponRule:
    # 满减 gives face_value, 折扣 gives discount_rate (basis points paid) and maybe max_discount
    face_value = fields.optional_integer("face_value") or 0
    discount_rate = fields.optional_integer("discount_rate", maximum=INT32_MAX) or 0
    max_discount = fields.optional_integer("max_discount") or 0
    windows = [_usage_window(w) for w in fields.objects("usage_windows", max_items=20)] \
        if fields.data.get("usage_windows") is not None else []
    threshold = fields.optional_integer("threshold") or 0
    max_uses = fields.optional_integer("max_uses", maximum=INT32_MAX) or 1  # 次卡: uses per coupon
    # empty or absent: every store of the merchant
    store_ids = fields.strings("store_ids", max_items=1000)
    redeem_methods = fields.strings("redeem_methods", required=True, max_items=2, max_length=16)
    validity = _validity(fields.object("validity"))
    check_stores_known(caller, store_ids)
    return catalog_pb2.CouponRule(face_value=face_value, threshold=threshold, store_ids=store_ids,
                                  redeem_methods=redeem_methods, validity=validity, discount_rate=discount_rate,
                                  max_discount=max_discount, usage_windows=windows, max_uses=max_uses)


def _virtual(fields: Fields) -> catalog_pb2.VirtualSpec:
    return catalog_pb2.VirtualSpec(
        delivery=fields.text("delivery", choices=DELIVERY_MODES),
        low_stock_threshold=fields.optional_integer("low_stock_threshold", maximum=INT32_MAX) or 0,
        supplier_sku=fields.optional_text("supplier_sku", max_length=100) or "")


def _physical(fields: Fields) -> catalog_pb2.PhysicalSpec:
    return catalog_pb2.PhysicalSpec(weight_grams=fields.optional_integer("weight_grams", maximum=INT32_MAX) or 0,
                                    spec=fields.optional_text("spec", max_length=200) or "")


@bp.post("/products")
@api_key_required
def create_product() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    fields = body_fields()
    kind = fields.text("kind", choices=PRODUCT_KINDS)
    name = fields.text("name")
    description = fields.optional_text("description", max_length=5000) or ""
    category_id = fields.text("category_id", max_length=64)
    price = fields.integer("price")
    stock = fields.object("stock")
    stock_mode = stock.text("mode", choices=STOCK_MODES)
    quantity = stock.integer("quantity") if stock_mode == "limited" else 0
    coupon = fields.optional_object("coupon")
    virtual = fields.optional_object("virtual")
    physical = fields.optional_object("physical")
    request = catalog_pb2.CreateProductRequest(
        kind=kind, name=name, description=description, category_id=category_id, price=price,
        stock=catalog_pb2.StockSpec(mode=stock_mode, quantity=quantity),
        coupon=_coupon_rule(coupon, caller) if coupon is not None else None,
        virtual=_virtual(virtual) if virtual is not None else None,
        physical=_physical(physical) if physical is not None else None,
        purchase_limit=fields.optional_integer("purchase_limit", maximum=INT32_MAX) or 0)
    return serializers.product(state().clients.create_product(caller, request)), 201


@bp.get("/products/<product_id>")
@api_key_required
def get_product(product_id: str) -> dict[str, Any]:
    return serializers.product(state().clients.get_product(current_caller(), product_id))


def _optional_bool(fields: Fields, name: str) -> bool | None:
    value = fields.data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise invalid(fields.field(name), "must be true or false", "type", expected="boolean")


def _page_args() -> tuple[int, str]:
    raw = request.args.get("limit", "")
    if raw and not (digits(raw) and 1 <= int(raw) <= 100):
        raise invalid("limit", "must be an integer from 1 to 100", "range", minimum=1, maximum=100)
    return int(raw or 0), request.args.get("cursor", "")


@bp.get("/products")
@api_key_required
def list_products() -> dict[str, Any]:
    """Filters: kind, category_id (a top-level one includes its children), on_shelf=true|false, q (name
    contains); newest first; `limit` 1..100 (20) and the opaque `cursor` from `next_cursor`."""
    args = request.args
    kind = args.get("kind", "")
    if kind and kind not in PRODUCT_KINDS:
        raise invalid("kind", f"must be one of {', '.join(PRODUCT_KINDS)}", "choice", choices=list(PRODUCT_KINDS))
    listing = catalog_pb2.ListProductsRequest(kind=kind, category_id=args.get("category_id", ""),
                                              text=args.get("q", "")[:100])
    on_shelf = args.get("on_shelf")
    if on_shelf is not None:
        if on_shelf not in ("true", "false"):
            raise invalid("on_shelf", "must be true or false", "choice", choices=["true", "false"])
        listing.on_shelf = on_shelf == "true"
    listing.limit, listing.cursor = _page_args()
    answer = state().clients.catalog(current_caller(), "ListProducts", listing)
    return {"data": [serializers.product(p) for p in answer.products],
            "next_cursor": answer.next_cursor or None}


@bp.patch("/products/<product_id>")
@api_key_required
def update_product(product_id: str) -> dict[str, Any]:
    """name, description, price, on_shelf, category_id, purchase_limit, low_stock_threshold,
    `stock: {adjustment, reason}` (a signed change of available units, recorded as a stock move), and a coupon
    product's whole `coupon` rule (as at creation; for orders from now on)."""
    fields = body_fields()
    change = catalog_pb2.UpdateProductRequest(product_id=product_id)
    texts = {"name": fields.optional_text("name"),
             "category_id": fields.optional_text("category_id", max_length=64)}
    if fields.data.get("description") is not None:  # "" clears the description
        texts["description"] = fields.optional_text("description", max_length=5000) or ""
    numbers = {"price": fields.optional_integer("price"),
               "purchase_limit": fields.optional_integer("purchase_limit", maximum=INT32_MAX),
               "low_stock_threshold": fields.optional_integer("low_stock_threshold", maximum=INT32_MAX),
               "on_shelf": _optional_bool(fields, "on_shelf")}
    for name, value in {**texts, **numbers}.items():
        if value is not None:
            setattr(change, name, value)
    coupon = fields.optional_object("coupon")
    if coupon is not None:
        change.coupon.CopyFrom(_coupon_rule(coupon, current_caller()))
    stock = fields.optional_object("stock")
    if stock is not None:
        change.stock_adjustment = stock.integer("adjustment", minimum=-INT32_MAX, maximum=INT32_MAX)
        change.stock_reason = stock.text("reason")
    return serializers.product(state().clients.catalog(current_caller(), "UpdateProduct", change))


@bp.get("/products/<product_id>/stock-moves")
@api_key_required
def list_stock_moves(product_id: str) -> dict[str, Any]:
    """Newest first: who moved the product's stock, why, and for which order."""
    limit, cursor = _page_args()
    answer = state().clients.catalog(current_caller(), "ListStockMoves", catalog_pb2.ListStockMovesRequest(
        product_id=product_id, limit=limit, cursor=cursor))
    return {"data": [{"id": int(m.id), "delta": int(m.delta), "reason": m.reason, "actor": m.actor,
                      "order_id": serializers.text_or_none(m.order_id), "note": serializers.text_or_none(m.note),
                      "created_at": serializers.ts(m, "created_at")} for m in answer.moves],
            "next_cursor": answer.next_cursor or None}


def _uploaded_file() -> tuple[str, bytes]:
    upload = request.files.get("file")
    if upload is None:
        raise invalid("file", "upload the file as multipart/form-data field `file`", "required")
    return (upload.filename or "").lower(), upload.read()


def _card_keys_from_upload() -> list[catalog_pb2.CardKeyInput]:
    """A CSV (card_number,password per line; a header line is skipped) or an .xlsx (first sheet, same columns)."""
    filename, content = _uploaded_file()
    if filename.endswith(".xlsx") or content[:2] == b"PK":
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(io.BytesIO(content), read_only=True, data_only=True).worksheets[0]
        except Exception:  # openpyxl raises many kinds for a file that is not an .xlsx
            raise invalid("file", "is not an .xlsx workbook", "format") from None
        rows = [["" if v is None else str(v) for v in row[:2]] for row in sheet.iter_rows(values_only=True)]
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise invalid("file", "must be UTF-8 CSV or .xlsx", "format") from None
        rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] and rows[0][0].strip().lower() in ("card_number", "卡号"):
        rows = rows[1:]
    keys = [catalog_pb2.CardKeyInput(card_number=(row[0] if row else "").strip(),
                                     password=(row[1] if len(row) > 1 else "").strip())
            for row in rows if any(cell.strip() for cell in row)]
    if not 1 <= len(keys) <= MAX_CARD_KEYS:
        raise invalid("file", f"must hold 1 to {MAX_CARD_KEYS} card keys", "length", max_items=MAX_CARD_KEYS)
    return keys


@bp.post("/products/<product_id>/card-keys")
@api_key_required
def load_card_keys(product_id: str) -> dict[str, Any]:
    """JSON `{"keys": [{card_number, password}]}`, or a multipart `file` (.csv or .xlsx). Duplicates (already
    loaded, or twice in the upload) are refused and reported by index with the card number masked."""
    if request.mimetype == "multipart/form-data":
        keys = _card_keys_from_upload()
    else:
        keys = [catalog_pb2.CardKeyInput(card_number=k.text("card_number", max_length=100),
                                         password=k.optional_text("password", max_length=200) or "")
                for k in body_fields().objects("keys", min_items=1, max_items=MAX_CARD_KEYS)]
    answer = state().clients.catalog(current_caller(), "LoadCardKeys",
                                     catalog_pb2.LoadCardKeysRequest(product_id=product_id, keys=keys))
    return {"loaded": int(answer.loaded), "card_keys_available": int(answer.card_keys_available),
            "refused": [{"index": int(r.index), "card_number": r.card_number_masked, "reason": r.reason}
                        for r in answer.refused]}


@bp.get("/products/<product_id>/card-keys")
@api_key_required
def list_card_keys(product_id: str) -> dict[str, Any]:
    """Staff see card numbers masked, never a password."""
    limit, cursor = _page_args()
    answer = state().clients.catalog(current_caller(), "ListCardKeys", catalog_pb2.ListCardKeysRequest(
        product_id=product_id, limit=limit, cursor=cursor))
    return {"data": [{"id": k.id, "card_number": k.card_number_masked, "status": k.status,
                      "order_id": serializers.text_or_none(k.order_id), "created_at": serializers.ts(k, "created_at"),
                      "allocated_at": serializers.ts(k, "allocated_at")} for k in answer.keys],
            "next_cursor": answer.next_cursor or None}


def _xlsx(file: catalog_pb2.FileContent) -> Response:
    return Response(file.content, mimetype=file.content_type or XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{file.filename}"'})


@bp.get("/products/import-template")
@api_key_required
def import_template() -> Response:
    return _xlsx(state().clients.catalog(current_caller(), "GetImportTemplate",
                                         catalog_pb2.GetImportTemplateRequest()))


@bp.post("/products/import")
@api_key_required
def import_products() -> tuple[dict[str, Any], int]:
    """Every row or none: 201 with the product ids, or 422 import_rejected listing every bad row."""
    caller = current_caller()
    _, content = _uploaded_file()
    with state().db.unit_of_work(read_only=True) as uow:
        store_ids = [row.id for row in StoreRepository(uow, caller).list()]
    answer = state().clients.catalog(caller, "ImportProducts", catalog_pb2.ImportProductsRequest(
        content=content, known_store_ids=store_ids))
    if answer.rejected:
        report = f"/v1/products/import/{answer.job_id}/errors.xlsx"
        return {"error": {
            "code": "import_rejected",
            "message": f"nothing was imported: {len(answer.errors)} problem(s); fix them and upload again "
                       f"(report: {report})",
            "details": [{"row": int(e.row), "column": e.column or None, "message": e.message}
                        for e in answer.errors],
            "job_id": answer.job_id, "error_report": report}}, 422
    return {"job_id": answer.job_id, "created": int(answer.created), "product_ids": list(answer.product_ids)}, 201


@bp.get("/products/import/<job_id>/errors.xlsx")
@api_key_required
def import_errors(job_id: str) -> Response:
    return _xlsx(state().clients.catalog(current_caller(), "GetImportErrors",
                                         catalog_pb2.GetImportErrorsRequest(job_id=job_id)))


# Product images: the catalog checks the bytes (magic bytes, size, count); the gateway lets an image-sized body
# through (the app's limit is 1 MiB) and answers the size refusal with 413.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_BODY_LIMIT = MAX_IMAGE_BYTES + 64 * 1024  # the multipart envelope around a largest image
IMAGE_CACHE_CONTROL = "private, max-age=86400"


class ImageTooLarge(GatewayError):
    code = "image_too_large"
    http_status = 413


def _too_large(size: int | None) -> ImageTooLarge:
    return ImageTooLarge(f"an image may be at most {MAX_IMAGE_BYTES} bytes",
                         details={"max_bytes": MAX_IMAGE_BYTES, **({"size": size} if size is not None else {})})


def _uploaded_image() -> tuple[bytes, str]:
    """The bytes and the declared type: multipart field `file`, or the raw body with its Content-Type."""
    request.max_content_length = IMAGE_BODY_LIMIT
    try:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("file")
            if upload is None:
                raise invalid("file", "upload the image as multipart/form-data field `file`", "required")
            return upload.read(MAX_IMAGE_BYTES + 1), upload.mimetype or ""
        return request.get_data(cache=False), request.mimetype or ""
    except RequestEntityTooLarge:
        raise _too_large(request.content_length) from None


@bp.post("/products/<product_id>/images")
@api_key_required
def add_product_image(product_id: str) -> tuple[dict[str, Any], int]:
    """PNG, JPEG or WebP (by magic bytes), ≤ 5 MiB, ≤ 10 per product: 201, or 200 with the image the
    product already has when the bytes are the same."""
    content, declared = _uploaded_image()
    if len(content) > MAX_IMAGE_BYTES:
        raise _too_large(len(content))
    if not content:
        raise invalid("file", "the image is empty", "required")
    try:
        answer = state().clients.catalog(current_caller(), "AddProductImage", catalog_pb2.AddProductImageRequest(
            product_id=product_id, content=content, declared_content_type=declared))
    except RemoteError as error:
        if error.code == ImageTooLarge.code:
            raise _too_large(len(content)) from None
        raise
    return serializers.product_image(answer.image), 201 if answer.created else 200


def _etags() -> list[str]:
    # werkzeug parses quoted, unquoted and weak tags; for images a weak match is as good as a strong one
    return list(request.if_none_match.as_set(include_weak=True))


@bp.get("/products/<product_id>/images/<image_id>")
@api_key_required
def get_product_image(product_id: str, image_id: str) -> Response:
    """The bytes with their type, ETag (the sha256) and a private day of caching; If-None-Match → 304."""
    answer = state().clients.catalog(current_caller(), "GetProductImage", catalog_pb2.GetProductImageRequest(
        product_id=product_id, image_id=image_id, if_none_match=_etags()))
    image = answer.image
    if answer.not_modified or image.sha256 in request.if_none_match:
        response = Response(status=304)
    else:
        response = Response(answer.content, mimetype=image.content_type)
    response.set_etag(image.sha256)
    response.headers["Cache-Control"] = IMAGE_CACHE_CONTROL
    return response


@bp.delete("/products/<product_id>/images/<image_id>")
@api_key_required
def delete_product_image(product_id: str, image_id: str) -> tuple[str, int]:
    state().clients.catalog(current_caller(), "DeleteProductImage", catalog_pb2.DeleteProductImageRequest(
        product_id=product_id, image_id=image_id))
    return "", 204
