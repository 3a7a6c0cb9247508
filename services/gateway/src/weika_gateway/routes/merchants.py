"""Merchants: the operator creates one (with a live and a test API key, shown once); a key reads its own."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from weika_gateway import serializers
from weika_gateway.adapters.repository import MerchantRepository
from weika_gateway.auth import (
    KEY_PREFIXES,
    api_key_required,
    current_caller,
    issue_api_key,
    operator_required,
)
from weika_gateway.errors import NotAuthenticated
from weika_gateway.routes import body_fields
from weika_gateway.state import state
from weika_kit import ids

bp = Blueprint("merchants", __name__, url_prefix="/v1")


@bp.post("/merchants")
@operator_required
def create_merchant() -> tuple[dict[str, Any], int]:
    fields = body_fields()
    name = fields.text("name", max_length=100)
    contact = fields.optional_text("contact", max_length=200)
    keys = {mode: issue_api_key(mode) for mode in KEY_PREFIXES}
    with state().db.unit_of_work() as uow:
        repo = MerchantRepository(uow)
        row = repo.add_merchant(id=ids.new_id("mch"), name=name, contact=contact)
        for key in keys.values():
            repo.add_api_key(id=key.id, merchant_id=row["id"], mode=key.mode, key_hash=key.key_hash,
                             key_hint=key.hint)
        uow.commit()
    body = serializers.merchant(row)
    # The only time the keys are ever shown: the database keeps their hashes alone.
    body["api_keys"] = {mode: key.plaintext for mode, key in keys.items()}
    return body, 201


@bp.get("/merchant")
@api_key_required
def get_merchant() -> dict[str, Any]:
    caller = current_caller()
    with state().db.unit_of_work(read_only=True) as uow:
        row = MerchantRepository(uow).get_merchant(caller.merchant_id)
    if row is None:
        raise NotAuthenticated("the API key's merchant no longer exists")
    return serializers.merchant(row, mode=caller.mode)
