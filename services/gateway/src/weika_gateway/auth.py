"""Bearer authentication: merchant API keys (stored as sha256, one mode each) and the operator token."""

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
from weika_gateway.errors import NotAuthenticated, OperatorTokenNotConfigured, OperatorTokenRequired
from weika_gateway.state import state
from weika_kit import context, ids
from weika_kit.context import Caller

KEY_PREFIXES = {"live": "wk_live_", "test": "wk_test_"}
# secrets.token_urlsafe(24) is 32 URL-safe characters: 192 random bits.
KEY_RANDOM_BYTES = 24
OWNER_ROLE = "owner"
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
    """The caller an API key acts as: its merchant, in its mode only, as the owner of every store."""
    with state().db.unit_of_work() as uow:
        key = MerchantRepository(uow).find_active_key(hash_key(token))
    if key is None:
        return None
    return Caller(merchant_id=key.merchant_id, mode=key.mode, staff_id=key.id, role=OWNER_ROLE, store_ids=())


def api_key_required(view: View) -> View:
    """The view runs with `current_caller()` set and the caller bound for logs and service calls."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        caller = caller_for_key(token) if token else None
        if caller is None:
            raise NotAuthenticated("a valid API key is required: Authorization: Bearer <key>")
        g.caller = caller
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
