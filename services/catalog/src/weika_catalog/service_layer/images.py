"""Product images: add (checked by magic bytes, deduplicated by sha256, at most 10), serve, delete.

Each change locks the product's row first, so two uploads to one product are serialised and the limit and
the duplicate check see each other; `UNIQUE (product_id, sha256)` backs the duplicate check anyway."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from weika_catalog.adapters.repository import CatalogRepository
from weika_catalog.domain import errors
from weika_catalog.domain.images import MAX_IMAGES_PER_PRODUCT, ImageNotFound, TooManyImages, inspect
from weika_catalog.service_layer.services import _must, _product_changed
from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import Database


@dataclass(frozen=True)
class Image:
    id: str
    product_id: str
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    position: int
    created_at: datetime


def _image(row: Any) -> Image:
    return Image(row.id, row.product_id, row.content_type, row.size, row.width, row.height, row.sha256,
                 row.position, row.created_at)


def _not_found(product_id: str, image_id: str) -> ImageNotFound:
    return ImageNotFound(f"image {image_id} of product {product_id} does not exist",
                         details={"product_id": product_id, "image_id": image_id})


def add_image(db: Database, caller: Caller, product_id: str, content: bytes,
              declared_content_type: str = "") -> tuple[Image, bool]:
    """The stored image and whether it is new (False: the product already had these bytes)."""
    sniffed = inspect(content, declared_content_type)
    sha256 = hashlib.sha256(content).hexdigest()
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        if not repo.lock_product(product_id):
            raise errors.ProductNotFound(f"product {product_id} does not exist", details={"product_id": product_id})
        existing = repo.image_by_sha256(product_id, sha256)
        if existing is not None:
            return _image(existing), False  # leaving without commit rolls back the lock's touch
        count, last_position = repo.image_count_and_last_position(product_id)
        if count >= MAX_IMAGES_PER_PRODUCT:
            raise TooManyImages(f"a product has at most {MAX_IMAGES_PER_PRODUCT} images; delete one first",
                                details={"product_id": product_id, "max_images": MAX_IMAGES_PER_PRODUCT})
        row = {"id": ids.new_id("img"), "product_id": product_id, "content_type": sniffed.content_type,
               "bytes": content, "sha256": sha256, "size": len(content), "width": sniffed.width,
               "height": sniffed.height, "position": last_position + 1, "created_at": uow.now()}
        repo.add_image(row)
        uow.add_event(_product_changed(_must(repo, product_id), "updated"))
        uow.commit()
    return Image(**{name: row[name] for name in Image.__dataclass_fields__}), True


def get_image(db: Database, caller: Caller, product_id: str, image_id: str,
              if_none_match: list[str] | None = None) -> tuple[Image, bytes | None]:
    """The image and its bytes; None instead of the bytes when the caller's ETags already name them."""
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        meta = repo.get_image(product_id, image_id, with_bytes=False)
        if meta is None:
            raise _not_found(product_id, image_id)
        if meta.sha256 in (if_none_match or ()):
            return _image(meta), None
        row = repo.get_image(product_id, image_id, with_bytes=True)
        if row is None:  # deleted between the two reads
            raise _not_found(product_id, image_id)
        return _image(row), bytes(row.bytes)


def delete_image(db: Database, caller: Caller, product_id: str, image_id: str) -> None:
    with db.unit_of_work() as uow:
        repo = CatalogRepository(uow, caller)
        if not repo.lock_product(product_id):
            raise errors.ProductNotFound(f"product {product_id} does not exist", details={"product_id": product_id})
        if not repo.delete_image(product_id, image_id):
            raise _not_found(product_id, image_id)
        uow.add_event(_product_changed(_must(repo, product_id), "updated"))
        uow.commit()


def images_of(db: Database, caller: Caller, product_ids: list[str]) -> dict[str, list[Image]]:
    """Each product's images by position (metadata only), for the product representation."""
    with db.unit_of_work() as uow:
        rows = CatalogRepository(uow, caller).images_of(product_ids)
    found: dict[str, list[Image]] = {}
    for row in rows:
        found.setdefault(row.product_id, []).append(_image(row))
    return found
