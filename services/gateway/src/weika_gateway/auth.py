"""Bearer authentication and authorization.

Merchant API keys (stored as sha256, one mode each) act as the owner; staff keys act as their staff member, with
the member's role and, for store roles, the member's stores. Every /v1 endpoint is allowed per role in ROLE_POLICY
(an endpoint not listed is for the owner and managers only), and the services check the stores again."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, request

from weika_gateway.adapters.repository import MerchantRepository
from weika_gateway.errors import (
    NotAuthenticated,
    OperatorTokenNotConfigured,
    OperatorTokenRequired,
    RoleNotAllowed,
)
from weika_gateway.state import state
from weika_kit import context, ids
from weika_kit.context import Caller

KEY_PREFIXES = {"live": "wk_live_", "test": "wk_test_"}
# secrets.token_urlsafe(24) is 32 URL-safe characters: 192 random bits.
KEY_RANDOM_BYTES = 24
OWNER_ROLE = "owner"
MANAGER_ROLE = "manager"
STORE_MANAGER_ROLE = "store_manager"
CLERK_ROLE = "clerk"
ANALYST_ROLE = "analyst"
# Roles a staff member can have (the owner is the merchant's own key), and which are limited to their stores.
STAFF_ROLES = (MANAGER_ROLE, STORE_MANAGER_ROLE, CLERK_ROLE, ANALYST_ROLE)
STORE_ROLES = (STORE_MANAGER_ROLE, CLERK_ROLE)

# The counter: look up products and orders, check and redeem the code the customer shows (at their stores; the
# services check). Not the coupon lists or QR images: those carry codes, which are the customer's money.
_CLERK = frozenset({
    "merchants.get_merchant", "staff.whoami", "stores.list_stores", "stores.get_store",
    "catalog.list_categories", "catalog.list_products", "catalog.get_product", "catalog.get_product_image",
    "redemptions.check_coupon", "redemptions.redeem_coupon",
    "redemptions.list_redemptions", "orders.get_order", "order_lifecycle.list_orders",
    "order_lifecycle.count_orders", "order_lifecycle.order_history",
})
_STORE_MANAGER = _CLERK | {"redemptions.reverse_redemption", "redemptions.list_redemption_attempts",
                           "order_lifecycle.ship_order"}
# Reads everything but secrets: coupon codes and QR images, card keys, delivered keys, payment channel settings,
# staff and the audit log.
_ANALYST = frozenset({
    "merchants.get_merchant", "staff.whoami", "stores.list_stores", "stores.get_store", "catalog.list_categories",
    "catalog.list_products", "catalog.get_product", "catalog.get_product_image", "catalog.list_stock_moves",
    "catalog.import_template", "customers.list_customers", "customers.get_customer",
    "orders.get_order", "order_lifecycle.list_orders", "order_lifecycle.count_orders",
    "order_lifecycle.order_history", "order_lifecycle.get_order_settings", "redemptions.list_redemptions",
    "redemptions.list_redemption_attempts", "redemptions.get_redemption_settings", "reports.overview",
})
# None: every endpoint.
ROLE_POLICY: dict[str, frozenset[str] | None] = {
    OWNER_ROLE: None, MANAGER_ROLE: None, STORE_MANAGER_ROLE: _STORE_MANAGER, CLERK_ROLE: _CLERK,
    ANALYST_ROLE: _ANALYST,
}
MAX_TOKEN_LENGTH = 512

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: `plaintext` is shown to the merchant once and never stored."""

    id: str
    mode: str
    plaintext: str
    key_hash: str
    hint: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def issue_api_key(mode: str) -> IssuedKey:
    plaintext = KEY_PREFIXES[mode] + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    return IssuedKey(id=ids.new_id("key"), mode=mode, plaintext=plaintext, key_hash=hash_key(plaintext),
                     hint=f"{KEY_PREFIXES[mode]}...{plaintext[-4:]}")


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def caller_for_key(token: str) -> Caller | None:
    """The caller an API key acts as, in its mode only: the merchant's own key as the owner of every store; a
    staff key as that staff member, with their role and stores, while they are active."""
    with state().db.unit_of_work(read_only=True) as uow:
        key = MerchantRepository(uow).find_active_key(hash_key(token))
    if key is None:
        return None
    if not key.staff_id:
        return Caller(merchant_id=key.merchant_id, mode=key.mode, staff_id=key.id, role=OWNER_ROLE, store_ids=())
    if key.member_id is None or not key.active:
        return None
    stores = tuple(s for s in key.store_ids.split(",") if s)
    if key.role in STORE_ROLES and not stores:
        return None  # no stores would mean every store: never for store staff
    return Caller(merchant_id=key.merchant_id, mode=key.mode, staff_id=key.member_id, role=key.role,
                  store_ids=stores)


def authorize(caller: Caller, endpoint: str | None) -> None:
    """Refuse, 403 role_not_allowed, what the caller's role may not do."""
    allowed = ROLE_POLICY.get(caller.role, frozenset())
    if allowed is None or (endpoint is not None and endpoint in allowed):
        return
    raise RoleNotAllowed(f"a {caller.role.replace('_', ' ')} may not do this ({request.method} {request.path})",
                         details={"role": caller.role, "endpoint": endpoint or ""})


def api_key_required(view: View) -> View:
    """The view runs with `current_caller()` set and the caller bound for logs and service calls."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        caller = caller_for_key(token) if token else None
        if caller is None:
            raise NotAuthenticated("a valid API key is required: Authorization: Bearer <key>")
        g.caller = caller
        authorize(caller, request.endpoint)
        with context.bound(caller=caller):
            return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def operator_required(view: View) -> View:
    """Only the platform operator's token (WEIKA_ADMIN_TOKEN) may call the view."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = state().settings.admin_token
        if not expected:
            raise OperatorTokenNotConfigured("operator endpoints are disabled: WEIKA_ADMIN_TOKEN is not set")
        token = bearer_token()
        if token is None:
            raise NotAuthenticated("the operator token is required: Authorization: Bearer <token>")
        if hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
            return view(*args, **kwargs)
        if caller_for_key(token) is not None:
            raise OperatorTokenRequired("this endpoint needs the operator token, not a merchant API key")
        raise NotAuthenticated("the operator token is not valid")

    return wrapper  # type: ignore[return-value]


def current_caller() -> Caller:
    """The caller authenticated by `api_key_required` for this request."""
    return g.caller  # type: ignore[no-any-return]
