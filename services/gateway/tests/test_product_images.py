"""Product image routes against a fake catalog that keeps images per merchant and mode and applies the
catalog's own acceptance rule (weika_catalog.domain.images.inspect): upload, listing on the product, serving
with ETag and 304, delete, and the refusals (not an image → 422, over 5 MiB → 413, other tenant → 404)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import segno

from weika.catalog.v1 import catalog_pb2
from weika_catalog.domain.images import inspect
from weika_kit import ids
from weika_kit.errors import DomainError, RemoteError

MAX = 5 * 1024 * 1024


def png(text: str = "x") -> bytes:
    buffer = io.BytesIO()
    segno.make(text).save(buffer, kind="png", scale=2)
    return buffer.getvalue()


def _remote(error: DomainError) -> RemoteError:
    return RemoteError(error.status, error.code, error.message, {k: str(v) for k, v in error.details.items()})


@dataclass
class ImageCatalog:
    """The image RPCs over the FakeClients' products: images live on the product messages themselves."""

    fake: Any
    content: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _product(self, caller: Any, product_id: str) -> catalog_pb2.Product:
        product = self.fake.products.get((caller.merchant_id, caller.mode, product_id))
        if product is None:
            raise RemoteError(grpc.StatusCode.NOT_FOUND, "product_not_found", "no such product", {})
        return product

    def _image(self, caller: Any, product_id: str, image_id: str) -> catalog_pb2.ProductImage:
        for image in self._product(caller, product_id).images:
            if image.id == image_id:
                return image
        raise RemoteError(grpc.StatusCode.NOT_FOUND, "image_not_found", "no such image", {})

    def __call__(self, caller: Any, method: str, request: Any) -> Any:
        self.calls.append((method, request))
        if method == "AddProductImage":
            try:
                sniffed = inspect(request.content, request.declared_content_type)
            except DomainError as error:
                raise _remote(error) from None
            product = self._product(caller, request.product_id)
            sha = hashlib.sha256(request.content).hexdigest()
            for image in product.images:
                if image.sha256 == sha:
                    return catalog_pb2.AddProductImageResponse(image=image, created=False)
            image = catalog_pb2.ProductImage(
                id=ids.new_id("img"), product_id=product.id, content_type=sniffed.content_type,
                size=len(request.content), width=sniffed.width, height=sniffed.height, sha256=sha)
            product.images.append(image)
            self.content[image.id] = request.content
            return catalog_pb2.AddProductImageResponse(image=image, created=True)
        if method == "GetProductImage":
            image = self._image(caller, request.product_id, request.image_id)
            if image.sha256 in request.if_none_match:
                return catalog_pb2.ProductImageContent(image=image, not_modified=True)
            return catalog_pb2.ProductImageContent(image=image, content=self.content[image.id])
        if method == "DeleteProductImage":
            product = self._product(caller, request.product_id)
            image = self._image(caller, request.product_id, request.image_id)
            product.images.remove(image)
            return catalog_pb2.DeleteProductImageResponse()
        raise AssertionError(f"unexpected {method}")


@pytest.fixture
def images(fake, merchant) -> ImageCatalog:
    fake.catalog = ImageCatalog(fake)
    for mode in ("live", "test"):
        fake.products[(merchant.id, mode, "prd_1")] = catalog_pb2.Product(
            id="prd_1", kind="physical", name="茶杯", category_id="cat_1", price=1500,
            stock=catalog_pb2.StockSpec(mode="limited", quantity=3))
    return fake.catalog


def _upload(client, merchant, content: bytes, *, filename: str = "photo.png", mimetype: str = "image/png",
            headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.post("/v1/products/prd_1/images", headers=headers or merchant.live,
                       data={"file": (io.BytesIO(content), filename, mimetype)}, content_type="multipart/form-data")


def test_upload_list_serve_with_etag_304_then_delete_and_404(client, merchant, images):
    content = png("hello")
    created = _upload(client, merchant, content)
    assert created.status_code == 201
    image = created.get_json()
    assert image["url"] == f"/v1/products/prd_1/images/{image['id']}"
    assert (image["content_type"], image["size"]) == ("image/png", len(content)) and image["width"] > 0
    listed = client.get("/v1/products/prd_1", headers=merchant.live).get_json()["images"]
    assert listed == [image]

    served = client.get(image["url"], headers=merchant.live)
    sha = hashlib.sha256(content).hexdigest()
    assert served.status_code == 200 and served.data == content and served.mimetype == "image/png"
    assert served.headers["ETag"] == f'"{sha}"'
    assert served.headers["Cache-Control"] == "private, max-age=86400"
    again = client.get(image["url"], headers={**merchant.live, "If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == f'"{sha}"'
    assert list(images.calls[-1][1].if_none_match) == [sha]  # the catalog was spared the bytes
    other = client.get(image["url"], headers={**merchant.live, "If-None-Match": '"someone-else"'})
    assert other.status_code == 200

    assert client.delete(image["url"], headers=merchant.live).status_code == 204
    assert client.get(image["url"], headers=merchant.live).status_code == 404
    assert client.get("/v1/products/prd_1", headers=merchant.live).get_json()["images"] == []


def test_the_same_bytes_again_answer_200_with_the_first_image(client, merchant, images):
    first = _upload(client, merchant, png("same"))
    second = _upload(client, merchant, png("same"), filename="again.png")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json()["id"] == first.get_json()["id"]


def test_a_raw_body_with_an_image_content_type_is_accepted(client, merchant, images):
    answer = client.post("/v1/products/prd_1/images", headers={**merchant.live, "Content-Type": "image/png"},
                         data=png("raw"))
    assert answer.status_code == 201 and answer.get_json()["content_type"] == "image/png"


def test_a_text_file_named_png_or_a_png_declared_jpeg_is_422_unsupported_image(client, merchant, images,
                                                                                 assert_error):
    assert_error(_upload(client, merchant, b"just some notes\n"), 422, "unsupported_image")
    assert_error(_upload(client, merchant, png(), filename="photo.jpg", mimetype="image/jpeg"), 422,
                 "unsupported_image")


def test_5_mib_is_accepted_and_one_byte_more_is_413_image_too_large(client, merchant, images, assert_error):
    largest = png("big").ljust(MAX, b"\x00")
    assert _upload(client, merchant, largest).status_code == 201
    body = assert_error(_upload(client, merchant, largest + b"\x00"), 413, "image_too_large")
    assert body["details"]["max_bytes"] == MAX
    raw = client.post("/v1/products/prd_1/images", headers={**merchant.live, "Content-Type": "image/png"},
                      data=largest + b"\x00")
    assert_error(raw, 413, "image_too_large")
    huge = client.post("/v1/products/prd_1/images", headers={**merchant.live, "Content-Type": "image/png"},
                       data=largest * 2)
    assert_error(huge, 413, "image_too_large")
    assert len([c for c in images.calls if c[0] == "AddProductImage"]) == 1  # refused before the catalog


def test_an_image_of_the_other_mode_is_404(client, merchant, images, assert_error):
    url = _upload(client, merchant, png("live")).get_json()["url"]
    assert_error(client.get(url, headers=merchant.test), 404, "image_not_found")
    assert_error(client.delete(url, headers=merchant.test), 404, "image_not_found")
    assert client.get(url, headers=merchant.live).status_code == 200
