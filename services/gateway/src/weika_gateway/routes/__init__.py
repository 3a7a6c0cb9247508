"""Helpers the /v1 blueprints share: reading the JSON body, and checking store ids against the caller's."""

from __future__ import annotations

from typing import Any

from flask import request

from weika_gateway.adapters.repository import StoreRepository
from weika_gateway.errors import UnknownStore
from weika_gateway.state import state
from weika_gateway.validation import Fields, parse_json_object
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork


def json_body() -> dict[str, Any]:
    """The request's JSON object (413 beyond the app's MAX_CONTENT_LENGTH, 400 when not JSON)."""
    return parse_json_object(request.get_data(cache=True))


def body_fields() -> Fields:
    return Fields(json_body())


def check_stores_known(caller: Caller, store_ids: list[str], uow: UnitOfWork | None = None) -> None:
    """Every id must name one of the caller's stores in the caller's mode, else 422 unknown_store. Inside a
    unit of work already open, pass it (a second one would wait on SQLite's write lock the first holds)."""
    if uow is not None:
        known = StoreRepository(uow, caller).known_ids(store_ids)
    else:
        with state().db.unit_of_work(read_only=True) as own:
            known = StoreRepository(own, caller).known_ids(store_ids)
    for store_id in store_ids:
        if store_id not in known:
            raise UnknownStore(f"store {store_id} is not one of your stores", details={"store_id": store_id})
