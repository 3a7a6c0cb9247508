"""The brute-force limiter on POST /v1/redemptions: unknown codes per store, per operator, per client address."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import grpc
import pytest
import redis
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from weika_gateway.adapters.repository import MerchantRepository
from weika_gateway.app import create_app
from weika_gateway.auth import issue_api_key
from weika_gateway.config import GatewaySettings
from weika_gateway.metrics import RATELIMIT_ERRORS, REDEMPTION_ATTEMPTS_BLOCKED
from weika_kit import crypto, hotstate
from weika_kit.db import Database
from weika_kit.errors import RemoteError

LIMIT = 3
WINDOW_S = 300
HERE, THERE = "10.0.0.1", "10.0.0.2"


def unknown_code() -> RemoteError:
    return RemoteError(grpc.StatusCode.NOT_FOUND, "coupon_not_found", "no coupon has this code", {})


def already_redeemed() -> RemoteError:
    return RemoteError(grpc.StatusCode.FAILED_PRECONDITION, "coupon_already_redeemed",
                       "this coupon was redeemed on 2026-06-18", {"coupon_id": "cpn_1"})


@pytest.fixture(autouse=True)
def secret_key(monkeypatch) -> Iterator[None]:
    # client addresses are hashed with the key; never the developer's var/secret.key
    monkeypatch.setenv("WEIKA_SECRET_KEY", Fernet.generate_key().decode())
    crypto._key.cache_clear()
    yield
    crypto._key.cache_clear()


@pytest.fixture
def hot_state() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def app(db: Database, fake, hot_state: fakeredis.FakeRedis) -> Flask:
    settings = GatewaySettings(admin_token="operator-token-for-tests", redeem_failure_limit=LIMIT,
                               redeem_failure_window_s=WINDOW_S)
    return create_app(db, clients=fake, settings=settings, hot_state=hot_state)


@pytest.fixture
def redeem(client: FlaskClient) -> Callable[..., Any]:
    """`redeem(headers, store_id, address=HERE)`: POST /v1/redemptions from that client address."""

    def post(headers: dict[str, str], store_id: str, address: str = HERE, code: str = "ABCD-EFGH") -> Any:
        return client.post("/v1/redemptions", json={"code": code, "store_id": store_id}, headers=headers,
                           environ_base={"REMOTE_ADDR": address})

    return post


@pytest.fixture
def second_live_key(db: Database) -> Callable[[str], dict[str, str]]:
    """Factory: another live API key of the merchant (another operator), as request headers."""

    def make(merchant_id: str) -> dict[str, str]:
        key = issue_api_key("live")
        with db.unit_of_work() as uow:
            MerchantRepository(uow).add_api_key(id=key.id, merchant_id=merchant_id, mode="live",
                                                key_hash=key.key_hash, key_hint=key.hint)
            uow.commit()
        return {"Authorization": f"Bearer {key.plaintext}"}

    return make


def exhaust(redeem: Callable[..., Any], headers: dict[str, str], store_id: str, address: str = HERE) -> None:
    """LIMIT unknown codes: each reaches the service and is answered 404."""
    for _ in range(LIMIT):
        assert redeem(headers, store_id, address).status_code == 404


def test_after_the_limit_of_unknown_codes_the_next_attempt_is_429_without_calling_the_service(
        redeem, merchant, make_store, fake, assert_error):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, store["id"])

    response = redeem(merchant.live, store["id"])

    error = assert_error(response, 429, "too_many_attempts")
    assert response.headers["Retry-After"] == str(WINDOW_S)
    assert f"try again in {WINDOW_S} seconds" in error["message"]
    assert error["details"]["retry_after_s"] == WINDOW_S
    assert len(fake.calls_of("redeem_coupon")) == LIMIT


def test_a_blocked_caller_stays_blocked_even_with_a_real_code(redeem, merchant, make_store, fake, assert_error):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, store["id"])
    fake.failures.clear()

    assert_error(redeem(merchant.live, store["id"]), 429, "too_many_attempts")
    assert len(fake.calls_of("redeem_coupon")) == LIMIT


def test_below_the_limit_redemptions_go_through(redeem, merchant, make_store, fake):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    for _ in range(LIMIT - 1):
        redeem(merchant.live, store["id"])
    fake.failures.clear()

    assert redeem(merchant.live, store["id"]).status_code == 201


def test_already_redeemed_refusals_and_successes_do_not_count(redeem, merchant, make_store, fake):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", already_redeemed())
    for _ in range(LIMIT + 2):
        assert redeem(merchant.live, store["id"]).status_code == 409
    fake.failures.clear()
    for _ in range(LIMIT + 2):
        assert redeem(merchant.live, store["id"]).status_code == 201

    assert redeem(merchant.live, store["id"]).status_code == 201
    assert len(fake.calls_of("redeem_coupon")) == 2 * (LIMIT + 2) + 1


def test_the_operator_scope_blocks_the_same_operator_at_another_store_and_address(
        redeem, merchant, make_store, fake, assert_error):
    first, second = make_store(merchant.live), make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, first["id"], HERE)

    error = assert_error(redeem(merchant.live, second["id"], THERE), 429, "too_many_attempts")

    assert error["details"]["scope"] == "operator"
    assert len(fake.calls_of("redeem_coupon")) == LIMIT


def test_the_store_scope_blocks_another_operator_at_the_same_store(
        redeem, merchant, make_store, fake, second_live_key, assert_error):
    store = make_store(merchant.live)
    other_operator = second_live_key(merchant.id)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, store["id"], HERE)

    error = assert_error(redeem(other_operator, store["id"], THERE), 429, "too_many_attempts")

    assert error["details"]["scope"] == "store"


def test_the_address_scope_blocks_another_operator_at_another_store_from_the_same_address(
        redeem, merchant, make_store, fake, second_live_key, assert_error):
    first, second = make_store(merchant.live), make_store(merchant.live)
    other_operator = second_live_key(merchant.id)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, first["id"], HERE)

    error = assert_error(redeem(other_operator, second["id"], HERE), 429, "too_many_attempts")
    assert error["details"]["scope"] == "address"
    fake.failures.clear()
    assert redeem(other_operator, second["id"], THERE).status_code == 201


def test_another_merchant_is_unaffected_even_from_the_same_address(redeem, merchant, make_merchant, make_store,
                                                                     fake):
    store = make_store(merchant.live)
    rival = make_merchant("Rival")
    rival_store = make_store(rival.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, store["id"], HERE)
    fake.failures.clear()

    assert redeem(rival.live, rival_store["id"], HERE).status_code == 201


def test_test_mode_failures_do_not_block_live_mode(redeem, merchant, make_store, fake):
    test_store, live_store = make_store(merchant.test), make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.test, test_store["id"], HERE)
    fake.failures.clear()

    assert redeem(merchant.live, live_store["id"], HERE).status_code == 201


def test_limiter_keys_hold_ids_and_hashed_addresses_never_codes_or_raw_addresses(redeem, merchant, make_store,
                                                                                  fake, hot_state):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())

    redeem(merchant.live, store["id"], HERE, code="SECRET-GUESS-1234")

    keys = sorted(key.decode() for key in hot_state.keys("*"))
    prefix = f"weika:limit:redeem:{merchant.id}:live:"
    assert len(keys) == 3 and all(key.startswith(prefix) for key in keys)
    assert {key[len(prefix):].split(":")[0] for key in keys} == {"address", "operator", "store"}
    assert f"{prefix}store:{store['id']}" in keys
    assert not any("SECRET" in key or HERE in key for key in keys)


def test_blocked_attempts_are_counted_by_scope(redeem, merchant, make_store, fake):
    store = make_store(merchant.live)
    fake.fail("redeem_coupon", unknown_code())
    exhaust(redeem, merchant.live, store["id"])
    before = REDEMPTION_ATTEMPTS_BLOCKED.labels("store")._value.get()

    redeem(merchant.live, store["id"])
    redeem(merchant.live, store["id"])

    # all three scopes are blocked with the same wait; the first in order (store) is named
    assert REDEMPTION_ATTEMPTS_BLOCKED.labels("store")._value.get() == before + 2


def unreachable_redis() -> redis.Redis:
    """A client of a loopback port nobody listens on: every command fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return hotstate.connect(f"redis://127.0.0.1:{port}/0")


def test_when_redis_is_down_redemptions_and_refusals_still_go_through(db, fake, merchant, make_store):
    down = create_app(db, clients=fake, settings=GatewaySettings(redeem_failure_limit=1),
                      hot_state=unreachable_redis()).test_client()
    store = make_store(merchant.live)
    errors_before = (RATELIMIT_ERRORS.labels("check")._value.get(), RATELIMIT_ERRORS.labels("record")._value.get())

    fake.fail("redeem_coupon", unknown_code())
    refusals = [down.post("/v1/redemptions", json={"code": "C", "store_id": store["id"]}, headers=merchant.live)
                for _ in range(3)]
    fake.failures.clear()
    success = down.post("/v1/redemptions", json={"code": "C", "store_id": store["id"]}, headers=merchant.live)

    assert [r.status_code for r in refusals] == [404, 404, 404]
    assert success.status_code == 201
    assert len(fake.calls_of("redeem_coupon")) == 4
    assert RATELIMIT_ERRORS.labels("check")._value.get() == errors_before[0] + 4
    assert RATELIMIT_ERRORS.labels("record")._value.get() == errors_before[1] + 3


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_the_client_address_comes_from_x_forwarded_for_only_behind_trusted_proxies(
        trusted_proxies, db, fake, hot_state, merchant, make_store, second_live_key):
    settings = GatewaySettings(admin_token="operator-token-for-tests", redeem_failure_limit=LIMIT,
                               redeem_failure_window_s=WINDOW_S, trusted_proxies=trusted_proxies)
    client = create_app(db, clients=fake, settings=settings, hot_state=hot_state).test_client()
    fake.fail("redeem_coupon", unknown_code())
    guessing_store, other_store = make_store(merchant.live), make_store(merchant.live)
    other_operator = second_live_key(merchant.id)

    def redeem(headers: dict[str, str], store_id: str, forwarded_for: str) -> Any:
        return client.post("/v1/redemptions", json={"code": "ABCD-EFGH", "store_id": store_id},
                           headers={**headers, "X-Forwarded-For": forwarded_for},
                           environ_base={"REMOTE_ADDR": "10.0.0.1"})  # the ingress

    for _ in range(LIMIT):
        assert redeem(merchant.live, guessing_store["id"], "203.0.113.7").status_code == 404

    # Another operator at another store, from another client behind the same ingress:
    answer = redeem(other_operator, other_store["id"], "198.51.100.20")
    # trusted: a different client, not blocked; untrusted: everyone behind the ingress shares its address.
    assert answer.status_code == (404 if trusted_proxies else 429)
