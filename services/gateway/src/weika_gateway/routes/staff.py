"""Staff: the owner and managers appoint staff with a role (and stores, for store roles), each with an API key of
their own shown once; deactivating a member stops their keys at once. `GET /v1/me` says who a key acts as, and
`GET /v1/audit-log` lists every change made through the API, by whom."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from weika_gateway import serializers
from weika_gateway.adapters.repository import (
    AuditRepository,
    MerchantRepository,
    StaffRepository,
)
from weika_gateway.auth import (
    MANAGER_ROLE,
    OWNER_ROLE,
    STAFF_ROLES,
    STORE_ROLES,
    api_key_required,
    current_caller,
    issue_api_key,
)
from weika_gateway.errors import RoleNotAssignable, StaffNotFound
from weika_gateway.routes import body_fields, check_stores_known
from weika_gateway.state import state
from weika_gateway.validation import digits, invalid
from weika_kit import ids
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork

bp = Blueprint("staff", __name__, url_prefix="/v1")

MAX_STORES = 50
AUDIT_PAGE_MAX = 200


def _check_assignable(caller: Caller, role: str) -> None:
    if role == MANAGER_ROLE and caller.role != OWNER_ROLE:
        raise RoleNotAssignable("only the owner appoints managers", details={"role": role})


def _checked_stores(uow: UnitOfWork, caller: Caller, role: str, store_ids: list[str]) -> list[str]:
    """Store roles work at 1..MAX_STORES of the merchant's stores (in this mode); the others at every store."""
    if role in STORE_ROLES and not store_ids:
        raise invalid("store_ids", f"a {role.replace('_', ' ')} works at one store at least", "required")
    if role not in STORE_ROLES and store_ids:
        raise invalid("store_ids", f"a {role.replace('_', ' ')} works for every store; leave store_ids empty",
                      "not_allowed")
    check_stores_known(caller, store_ids, uow)
    return store_ids


def _issue_key(repo: MerchantRepository, caller: Caller, staff_id: str) -> str:
    key = issue_api_key(caller.mode)
    repo.add_api_key(id=key.id, merchant_id=caller.merchant_id, mode=caller.mode, key_hash=key.key_hash,
                     key_hint=key.hint, staff_id=staff_id)
    return key.plaintext


def _member(repo: StaffRepository, staff_id: str) -> Any:
    row = repo.get(staff_id)
    if row is None:
        raise StaffNotFound(f"staff member {staff_id} does not exist", details={"staff_id": staff_id})
    return row


@bp.post("/staff")
@api_key_required
def create_staff() -> tuple[dict[str, Any], int]:
    caller = current_caller()
    fields = body_fields()
    name = fields.text("name", max_length=100)
    role = fields.text("role", max_length=20, choices=STAFF_ROLES)
    store_ids = fields.strings("store_ids", max_items=MAX_STORES, max_length=40)
    _check_assignable(caller, role)
    with state().db.unit_of_work() as uow:
        _checked_stores(uow, caller, role, store_ids)
        staff = StaffRepository(uow, caller)
        row = staff.add(id=ids.new_id("stf"), name=name, role=role, store_ids=store_ids)
        plaintext = _issue_key(MerchantRepository(uow), caller, row["id"])
        hints = staff.key_hints(row["id"])
        uow.commit()
    body = serializers.staff_member(row, hints)
    body["api_key"] = plaintext  # shown this once; only its hash is kept
    return body, 201


@bp.get("/staff")
@api_key_required
def list_staff() -> dict[str, Any]:
    with state().db.unit_of_work(read_only=True) as uow:
        repo = StaffRepository(uow, current_caller())
        return {"data": [serializers.staff_member(row, repo.key_hints(row.id)) for row in repo.list()]}


@bp.get("/staff/<staff_id>")
@api_key_required
def get_staff(staff_id: str) -> dict[str, Any]:
    with state().db.unit_of_work(read_only=True) as uow:
        repo = StaffRepository(uow, current_caller())
        row = _member(repo, staff_id)
        return serializers.staff_member(row, repo.key_hints(staff_id))


@bp.patch("/staff/<staff_id>")
@api_key_required
def update_staff(staff_id: str) -> dict[str, Any]:
    """Rename, change role or stores, or deactivate (`active: false` stops every key of theirs at once)."""
    caller = current_caller()
    fields = body_fields()
    name = fields.optional_text("name", max_length=100)
    role = fields.optional_text("role", max_length=20, choices=STAFF_ROLES)
    active = fields.data.get("active")
    if active is not None and not isinstance(active, bool):
        raise invalid("active", "must be true or false", "type", expected="boolean")
    given_stores = (fields.strings("store_ids", max_items=MAX_STORES, max_length=40)
                    if "store_ids" in fields.data else None)
    # One unit of work: what is checked (the member's role) is what is changed, whatever runs alongside.
    with state().db.unit_of_work() as uow:
        repo = StaffRepository(uow, caller)
        row = _member(repo, staff_id)
        _check_assignable(caller, row.role)  # a manager does not change another manager
        new_role = role or row.role
        _check_assignable(caller, new_role)
        if given_stores is not None:
            stores = given_stores
        elif new_role in STORE_ROLES:
            stores = [s for s in row.store_ids.split(",") if s]
        else:
            stores = []  # a role for every store keeps no store list
        values: dict[str, Any] = {"role": new_role, "store_ids": _checked_stores(uow, caller, new_role, stores)}
        if name is not None:
            values["name"] = name
        if active is not None:
            values["active"] = active
            if not active:
                repo.revoke_keys(staff_id)  # reactivating later needs a new key: old ones never come back
        repo.update(staff_id, **values)
        uow.commit()
        return serializers.staff_member(_member(repo, staff_id), repo.key_hints(staff_id))


@bp.post("/staff/<staff_id>/api-key")
@api_key_required
def rotate_staff_key(staff_id: str) -> tuple[dict[str, Any], int]:
    """A new key for the member (shown once); their previous keys stop working."""
    caller = current_caller()
    with state().db.unit_of_work() as uow:
        repo = StaffRepository(uow, caller)
        row = _member(repo, staff_id)
        _check_assignable(caller, row.role)
        repo.revoke_keys(staff_id)
        plaintext = _issue_key(MerchantRepository(uow), caller, staff_id)
        body = serializers.staff_member(row, repo.key_hints(staff_id))
        uow.commit()
    body["api_key"] = plaintext
    return body, 201


@bp.get("/me")
@api_key_required
def whoami() -> dict[str, Any]:
    """Who this key acts as: the workbench shows the clerk's name and stores from it."""
    caller = current_caller()
    body: dict[str, Any] = {"merchant_id": caller.merchant_id, "mode": caller.mode, "role": caller.role,
                            "staff_id": None, "name": None, "store_ids": list(caller.store_ids)}
    if caller.role != OWNER_ROLE:
        with state().db.unit_of_work(read_only=True) as uow:
            row = StaffRepository(uow, caller).get(caller.staff_id)
        body.update(staff_id=caller.staff_id, name=row.name if row is not None else None)
    return body


@bp.get("/audit-log")
@api_key_required
def audit_log() -> dict[str, Any]:
    """Newest first; `actor_id` filters to one staff member (or merchant key); `cursor` pages on."""
    limit = request.args.get("limit", "50")
    if not digits(limit) or not 1 <= int(limit) <= AUDIT_PAGE_MAX:
        raise invalid("limit", f"must be an integer between 1 and {AUDIT_PAGE_MAX}", "range",
                      minimum=1, maximum=AUDIT_PAGE_MAX)
    cursor = request.args.get("cursor", "")
    if cursor and not digits(cursor):
        raise invalid("cursor", "is not one this endpoint handed out", "format")
    with state().db.unit_of_work(read_only=True) as uow:
        rows = AuditRepository(uow, current_caller()).list(
            actor_id=request.args.get("actor_id", "")[:40] or None, before_id=int(cursor) if cursor else None,
            limit=int(limit) + 1)
    page = rows[:int(limit)]
    return {"data": [serializers.audit_entry(row) for row in page],
            "next_cursor": str(page[-1].id) if len(rows) > int(limit) else None}
