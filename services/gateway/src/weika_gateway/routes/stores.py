"""Stores: per merchant and per mode (the test world has stores of its own); codes unique in each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy.exc import IntegrityError

from weika_gateway import serializers
from weika_gateway.adapters.repository import StoreRepository
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.errors import StoreCodeTaken, StoreNotFound
from weika_gateway.routes import body_fields
from weika_gateway.state import state
from weika_kit import ids

bp = Blueprint("stores", __name__, url_prefix="/v1")


@bp.post("/stores")
@api_key_required
def create_store() -> tuple[dict[str, Any], int]:
    fields = body_fields()
    name = fields.text("name", max_length=100)
    code = fields.text("code", max_length=40)
    region = fields.optional_text("region", max_length=40)
    address = fields.optional_text("address", max_length=300)
    try:
        with state().db.unit_of_work() as uow:
            row = StoreRepository(uow, current_caller()).add(
                id=ids.new_id("sto"), name=name, code=code, region=region, address=address)
            uow.commit()
    except IntegrityError:
        raise StoreCodeTaken(f"a store with code {code!r} already exists", details={"code": code}) from None
    return serializers.store(row), 201


@bp.get("/stores")
@api_key_required
def list_stores() -> dict[str, Any]:
    caller = current_caller()
    with state().db.unit_of_work(read_only=True) as uow:
        rows = StoreRepository(uow, caller).list()
    # store staff see the stores they work at
    return {"data": [serializers.store(row) for row in rows if caller.may_act_at_store(row.id)]}


@bp.get("/stores/<store_id>")
@api_key_required
def get_store(store_id: str) -> dict[str, Any]:
    caller = current_caller()
    with state().db.unit_of_work(read_only=True) as uow:
        row = StoreRepository(uow, caller).get(store_id)
    if row is None or not caller.may_act_at_store(store_id):
        raise StoreNotFound(f"store {store_id} does not exist", details={"store_id": store_id})
    return serializers.store(row)
