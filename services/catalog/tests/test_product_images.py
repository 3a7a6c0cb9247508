"""Product images: accepted by magic bytes only, deduplicated per product, at most 10, tenant-scoped, and
large enough ones still travel over gRPC."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import struct

import grpc
import pytest
import segno

from weika.catalog.v1 import catalog_pb2 as pb
from weika.catalog.v1 import catalog_pb2_grpc
from weika_catalog.bootstrap import registrations
from weika_catalog.domain import images as rules
from weika_catalog.service_layer import images
from weika_kit import context, grpc_client
from weika_kit.context import Caller
from weika_kit.errors import Conflict, InvalidArgument, NotFound
from weika_kit.grpc_server import GrpcServer

CHANGED = "weika.catalog.product-changed.v1"


def png(text: str = "x", scale: int = 1) -> bytes:
    buffer = io.BytesIO()
    segno.make(text).save(buffer, kind="png", scale=scale)
    return buffer.getvalue()


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, then a baseline frame header: enough for the sniffer and the size reader."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    chunk = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 3
    return b"RIFF" + struct.pack("<I", 12 + len(chunk)) + b"WEBP" + b"VP8L" + struct.pack("<I", len(chunk)) + chunk


def test_formats_are_recognised_by_magic_bytes_and_sizes_read_from_the_header():
    qr = png("x", scale=3)
    sniffed = rules.inspect(qr, "image/png")
    assert sniffed.content_type == "image/png" and sniffed.width == sniffed.height > 0
    assert rules.inspect(jpeg_header(640, 480), "image/jpeg") == rules.Sniffed("image/jpeg", 640, 480)
    assert rules.inspect(webp_lossless(300, 200), "") == rules.Sniffed("image/webp", 300, 200)
    # the declared type does not decide: generic types are fine, a wrong image type is refused
    assert rules.inspect(qr, "application/octet-stream").content_type == "image/png"
    with pytest.raises(InvalidArgument) as mismatch:
        rules.inspect(qr, "image/jpeg")
    assert mismatch.value.code == "unsupported_image"
    for content in (b"hello, I am text named photo.png", b"GIF89a" + b"\x00" * 20, b""):
        with pytest.raises(InvalidArgument) as refused:
            rules.inspect(content, "image/png")
        assert refused.value.code == "unsupported_image"
    with pytest.raises(InvalidArgument) as big:
        rules.inspect(b"\x89PNG\r\n\x1a\n" + b"\x00" * rules.MAX_IMAGE_BYTES, "image/png")
    assert big.value.code == "image_too_large"


def test_an_image_is_stored_listed_served_and_deleted_with_product_changed(db, make):
    product = make.product(db)
    before = len(make.outbox(db, CHANGED))
    content = png("hello")
    image, created = images.add_image(db, make.shop, product.id, content, "image/png")
    assert created and image.sha256 == hashlib.sha256(content).hexdigest() and image.size == len(content)
    assert len(make.outbox(db, CHANGED)) == before + 1
    assert [i.id for i in images.images_of(db, make.shop, [product.id])[product.id]] == [image.id]
    served, body = images.get_image(db, make.shop, product.id, image.id)
    assert body == content and served.content_type == "image/png"
    assert images.get_image(db, make.shop, product.id, image.id, [image.sha256])[1] is None  # not modified
    images.delete_image(db, make.shop, product.id, image.id)
    assert len(make.outbox(db, CHANGED)) == before + 2
    with pytest.raises(NotFound) as gone:
        images.get_image(db, make.shop, product.id, image.id)
    assert gone.value.code == "image_not_found"
    with pytest.raises(NotFound):
        images.delete_image(db, make.shop, product.id, image.id)


def test_the_same_bytes_twice_return_the_first_image_and_store_once(db, make):
    product, other = make.product(db), make.product(db)
    first, created = images.add_image(db, make.shop, product.id, png("same"))
    again, created_again = images.add_image(db, make.shop, product.id, png("same"))
    assert (created, created_again, again.id) == (True, False, first.id)
    assert len(images.images_of(db, make.shop, [product.id])[product.id]) == 1
    # another product may hold the same picture
    assert images.add_image(db, make.shop, other.id, png("same"))[1] is True


def test_an_eleventh_image_is_refused_and_a_deleted_one_makes_room(db, make):
    product = make.product(db)
    added = [images.add_image(db, make.shop, product.id, png(f"img{n}"))[0] for n in range(10)]
    assert [i.position for i in added] == list(range(10))
    with pytest.raises(Conflict) as full:
        images.add_image(db, make.shop, product.id, png("one too many"))
    assert full.value.code == "too_many_images"
    images.delete_image(db, make.shop, product.id, added[3].id)
    assert images.add_image(db, make.shop, product.id, png("one too many"))[0].position == 10


def test_another_merchants_or_modes_image_does_not_exist(db, make):
    product = make.product(db)
    image, _ = images.add_image(db, make.shop, product.id, png())
    live_self = Caller(make.shop.merchant_id, "live", staff_id="key_3", role="owner")
    for stranger in (make.rival, live_self):
        with pytest.raises(NotFound):
            images.get_image(db, stranger, product.id, image.id)
        with pytest.raises(NotFound):
            images.delete_image(db, stranger, product.id, image.id)
        with pytest.raises(NotFound):
            images.add_image(db, stranger, product.id, png("intruder"))
        assert images.images_of(db, stranger, [product.id]) == {}
    # the image must also belong to the product named in the path
    other = make.product(db)
    with pytest.raises(NotFound):
        images.get_image(db, make.shop, other.id, image.id)
    assert images.get_image(db, make.shop, product.id, image.id)[1] == png()


@pytest.fixture
def target(db):  # type: ignore[no-untyped-def]
    server = GrpcServer("catalog", "127.0.0.1:0", registrations(db), [], max_workers=2)
    server.start()
    address = f"127.0.0.1:{server.port}"
    yield address
    grpc_client.forget(address)
    server.stop(0)


def test_a_5_mib_image_travels_both_ways_over_grpc_and_products_list_their_images(db, make, target):
    product = make.product(db)
    big = png("big").ljust(rules.MAX_IMAGE_BYTES, b"\x00")  # a PNG signature and header, padded to the limit
    stub = grpc_client.stub(catalog_pb2_grpc.CatalogServiceStub, target)
    with context.bound(caller=make.shop):
        added = grpc_client.call(stub.AddProductImage, pb.AddProductImageRequest(
            product_id=product.id, content=big, declared_content_type="image/png"))
        assert added.created and added.image.size == rules.MAX_IMAGE_BYTES and added.image.width > 0
        served = grpc_client.call(stub.GetProductImage, pb.GetProductImageRequest(
            product_id=product.id, image_id=added.image.id))
        assert served.content == big and not served.not_modified
        listed = grpc_client.call(stub.GetProduct, pb.GetProductRequest(product_id=product.id))
        assert [(i.id, i.content_type) for i in listed.images] == [(added.image.id, "image/png")]
        page = grpc_client.call(stub.ListProducts, pb.ListProductsRequest())
        assert {p.id: len(p.images) for p in page.products}[product.id] == 1
        with pytest.raises(Exception) as refused:
            grpc_client.call(stub.AddProductImage, pb.AddProductImageRequest(
                product_id=product.id, content=b"plain text", declared_content_type="image/png"))
    assert getattr(refused.value, "code", None) == "unsupported_image"
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_concurrent_uploads_on_postgres_never_pass_ten_images_nor_store_one_twice(fresh_postgres_database,
                                                                                 make_db, make):
    db = make_db(fresh_postgres_database("catalog_images"))
    product = make.product(db)
    contents = [png(f"p{n}") for n in range(14)] + [png("p0")] * 6  # 14 distinct, the first one 7 times

    def upload(content: bytes) -> str:
        try:
            return "created" if images.add_image(db, make.shop, product.id, content)[1] else "duplicate"
        except Conflict as refusal:
            return refusal.code

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(upload, contents))
    stored = images.images_of(db, make.shop, [product.id])[product.id]
    assert outcomes.count("created") == len(stored) == 10
    assert len({i.sha256 for i in stored}) == 10 and sorted(i.position for i in stored) == list(range(10))
