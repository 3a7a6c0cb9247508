"""Reads and writes of the gateway's rows. Stores and idempotency records are always filtered by the caller's
merchant and mode; merchants and keys are looked up by the operator or by authentication, before any caller."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from weika_gateway.adapters import tables as t
from weika_kit.context import Caller
from weika_kit.db import UnitOfWork


class MerchantRepository:
    """Merchants and their API keys (the platform level: no tenant filter applies to finding a key)."""

    def __init__(self, uow: UnitOfWork):
        self.uow = uow

    def add_merchant(self, *, id: str, name: str, contact: str | None) -> dict[str, Any]:
        row = {"id": id, "name": name, "contact": contact, "created_at": self.uow.now()}
        self.uow.execute(insert(t.merchants).values(**row))
        return row

    def add_api_key(self, *, id: str, merchant_id: str, mode: str, key_hash: str, key_hint: str,
                    staff_id: str | None = None) -> None:
        self.uow.execute(insert(t.api_keys).values(
            id=id, merchant_id=merchant_id, mode=mode, key_hash=key_hash, key_hint=key_hint,
            created_at=self.uow.now(), revoked_at=None, staff_id=staff_id))

    def get_merchant(self, merchant_id: str) -> Row[Any] | None:
        return self.uow.execute(select(t.merchants).where(t.merchants.c.id == merchant_id)).first()

    def find_active_key(self, key_hash: str) -> Row[Any] | None:
        """The unrevoked key with this hash, with its merchant's id and mode and, for a staff key, its staff member
        (`member_id`, `role`, `active`, `store_ids`; all None when the key is the merchant's own or the member is
        gone), whoever asks (authentication runs before there is a caller). One query: it runs on every request."""
        k, s = t.api_keys.c, t.staff.c
        return self.uow.execute(
            select(k.id, k.merchant_id, k.mode, k.staff_id, s.id.label("member_id"), s.role, s.active, s.store_ids)
            .select_from(t.api_keys.outerjoin(t.staff, s.id == k.staff_id))
            .where(k.key_hash == key_hash, k.revoked_at.is_(None))).first()


class StoreRepository:
    """The caller's stores, in the caller's mode only: the test world never sees live stores."""

    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self):  # type: ignore[no-untyped-def]
        return (t.stores.c.merchant_id == self.merchant_id) & (t.stores.c.mode == self.mode)

    def add(self, *, id: str, name: str, code: str, region: str | None, address: str | None) -> dict[str, Any]:
        """Raises IntegrityError when the code is taken (the unique constraint decides, not a prior read)."""
        row = {"id": id, "name": name, "code": code, "region": region, "address": address,
               "created_at": self.uow.now()}
        self.uow.execute(insert(t.stores).values(merchant_id=self.merchant_id, mode=self.mode, **row))
        return row

    def get(self, store_id: str) -> Row[Any] | None:
        return self.uow.execute(select(t.stores).where(t.stores.c.id == store_id, self._mine())).first()

    def list(self) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.stores).where(self._mine()).order_by(t.stores.c.created_at, t.stores.c.id)))

    def known_ids(self, store_ids: Iterable[str]) -> set[str]:
        wanted = list(store_ids)
        if not wanted:
            return set()
        rows = self.uow.execute(select(t.stores.c.id).where(t.stores.c.id.in_(wanted), self._mine()))
        return {row.id for row in rows}


class IdempotencyRepository:
    """Which Idempotency-Key first produced which order, per merchant and mode."""

    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def add(self, *, idempotency_key: str, request_fingerprint: str, order_id: str) -> None:
        """Raises IntegrityError when the key was recorded before (a replay)."""
        self.uow.execute(insert(t.idempotency_records).values(
            merchant_id=self.merchant_id, mode=self.mode, idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint, order_id=order_id, created_at=self.uow.now()))


class StaffRepository:
    """The caller's staff, in the caller's mode, and their keys."""

    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def _mine(self):  # type: ignore[no-untyped-def]
        return (t.staff.c.merchant_id == self.merchant_id) & (t.staff.c.mode == self.mode)

    def add(self, *, id: str, name: str, role: str, store_ids: list[str]) -> dict[str, Any]:
        now = self.uow.now()
        row = {"id": id, "name": name, "role": role, "store_ids": ",".join(store_ids), "active": True,
               "created_at": now, "updated_at": now}
        self.uow.execute(insert(t.staff).values(merchant_id=self.merchant_id, mode=self.mode, **row))
        return row

    def get(self, staff_id: str) -> Row[Any] | None:
        return self.uow.execute(select(t.staff).where(t.staff.c.id == staff_id, self._mine())).first()

    def list(self) -> list[Row[Any]]:
        return list(self.uow.execute(
            select(t.staff).where(self._mine()).order_by(t.staff.c.created_at, t.staff.c.id)))

    def update(self, staff_id: str, **values: Any) -> None:
        if "store_ids" in values:
            values["store_ids"] = ",".join(values["store_ids"])
        self.uow.execute(update(t.staff).where(t.staff.c.id == staff_id, self._mine())
                         .values(**values, updated_at=self.uow.now()))

    def revoke_keys(self, staff_id: str) -> int:
        return int(self.uow.execute(
            update(t.api_keys).where(t.api_keys.c.staff_id == staff_id, t.api_keys.c.merchant_id == self.merchant_id,
                                     t.api_keys.c.revoked_at.is_(None))
            .values(revoked_at=self.uow.now())).rowcount)

    def key_hints(self, staff_id: str) -> list[str]:
        rows = self.uow.execute(select(t.api_keys.c.key_hint).where(
            t.api_keys.c.staff_id == staff_id, t.api_keys.c.merchant_id == self.merchant_id,
            t.api_keys.c.revoked_at.is_(None)).order_by(t.api_keys.c.created_at))
        return [row.key_hint for row in rows]


class AuditRepository:
    """The audit log of the caller's merchant and mode."""

    def __init__(self, uow: UnitOfWork, caller: Caller):
        self.uow = uow
        self.merchant_id = caller.merchant_id
        self.mode = caller.mode

    def add(self, *, actor_id: str, role: str, method: str, path: str, status: int, request_id: str) -> None:
        self.uow.execute(insert(t.audit_log).values(
            merchant_id=self.merchant_id, mode=self.mode, actor_id=actor_id, role=role, method=method,
            path=path[:300], status=status, request_id=request_id[:128], at=self.uow.now()))

    def list(self, *, actor_id: str | None, before_id: int | None, limit: int) -> list[Row[Any]]:
        a = t.audit_log.c
        query = select(t.audit_log).where(a.merchant_id == self.merchant_id, a.mode == self.mode)
        if actor_id:
            query = query.where(a.actor_id == actor_id)
        if before_id is not None:
            query = query.where(a.id < before_id)
        return list(self.uow.execute(query.order_by(a.id.desc()).limit(limit)))
