"""The hot-state client and the failure limiter: on fakeredis, and on a real Redis server (-m redis)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from weika_kit import hotstate
from weika_kit.hotstate import FailureLimiter, scope_key

MERCHANT, MODE = "mch_1", "live"


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def store_key(store_id: str = "sto_1") -> str:
    return scope_key(MERCHANT, MODE, "store", store_id)


def failures_in_parallel(limiter: FailureLimiter, key: str, threads: int) -> list[int | None]:
    """`threads` threads call record_failure(key) at the same instant; their answers."""
    start = threading.Barrier(threads)
    answers: list[int | None] = []
    lock = threading.Lock()

    def fail_once() -> None:
        start.wait()
        answer = limiter.record_failure(key)
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=fail_once) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    return answers


def test_without_redis_url_the_client_is_one_process_local_fake(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)

    first, second = hotstate.redis_client(), hotstate.redis_client()

    assert isinstance(first, fakeredis.FakeRedis)
    assert first is second
    first.set("weika:test:shared", b"1")
    try:
        assert second.get("weika:test:shared") == b"1"
    finally:
        first.delete("weika:test:shared")


def test_with_redis_url_the_client_dials_it_with_short_timeouts_and_no_retries(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/3")

    client = hotstate.redis_client()

    kwargs = client.connection_pool.connection_kwargs
    assert not isinstance(client, fakeredis.FakeRedis)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 1, 3)
    assert kwargs["socket_connect_timeout"] == kwargs["socket_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0


def test_an_unreachable_redis_fails_fast_with_a_redis_error():
    client = hotstate.connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    limiter = FailureLimiter(client, "t", limit=3, window_s=60)

    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        limiter.blocked(store_key())

    assert time.monotonic() - started < 2


def test_a_key_is_blocked_from_its_limit_th_failure_on(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=3, window_s=60)

    answers = [limiter.record_failure(store_key()) for _ in range(3)]

    assert answers[:2] == [None, None]
    assert answers[2] == 60
    assert limiter.blocked(store_key()) == 60
    assert limiter.blocked(store_key("sto_2")) is None


def test_below_the_limit_a_key_is_not_blocked(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=3, window_s=60)
    limiter.record_failure(store_key())
    limiter.record_failure(store_key())

    assert limiter.blocked(store_key()) is None


def test_counts_expire_after_the_window(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=2, window_s=0.3)
    limiter.record_failure(store_key())
    limiter.record_failure(store_key())
    assert limiter.blocked(store_key()) == 1  # whole seconds, rounded up

    time.sleep(0.4)

    assert limiter.blocked(store_key()) is None
    assert limiter.record_failure(store_key()) is None  # a fresh window: counting starts again at 1


def test_later_failures_do_not_push_the_window_out(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=100, window_s=60)
    limiter.record_failure(store_key())
    fake_redis.pexpire(limiter.redis_key(store_key()), 5_000)  # as if the window opened 55 s ago

    limiter.record_failure(store_key())

    assert fake_redis.pttl(limiter.redis_key(store_key())) <= 5_000


def test_keys_are_namespaced_by_limiter_merchant_mode_and_scope(fake_redis):
    limiter = FailureLimiter(fake_redis, "redeem", limit=5, window_s=60)

    limiter.record_failure(scope_key("mch_1", "live", "store", "sto_1"))

    assert fake_redis.keys("*") == [b"weika:limit:redeem:mch_1:live:store:sto_1"]
    assert fake_redis.ttl(b"weika:limit:redeem:mch_1:live:store:sto_1") == 60


def test_other_merchants_modes_and_limiters_do_not_share_counts(fake_redis):
    limiter = FailureLimiter(fake_redis, "redeem", limit=1, window_s=60)
    limiter.record_failure(scope_key("mch_1", "live", "store", "sto_1"))

    assert limiter.blocked(scope_key("mch_1", "live", "store", "sto_1")) == 60
    assert limiter.blocked(scope_key("mch_2", "live", "store", "sto_1")) is None
    assert limiter.blocked(scope_key("mch_1", "test", "store", "sto_1")) is None
    assert FailureLimiter(fake_redis, "other", limit=1, window_s=60).blocked(
        scope_key("mch_1", "live", "store", "sto_1")) is None


@pytest.mark.parametrize("parts", [("mch_1", "live", "store", ""), ("mch:1", "live", "store", "sto_1"),
                                   ("mch_1", "live", "store", "a:b")])
def test_a_key_part_that_is_empty_or_holds_the_separator_is_refused(parts):
    with pytest.raises(ValueError):
        scope_key(*parts)


def test_several_keys_are_counted_and_checked_in_one_call(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=2, window_s=60)
    keys = [store_key("sto_1"), store_key("sto_2")]
    limiter.record_failure(keys[0])

    outcome = limiter.record_failures(keys)

    assert outcome == {keys[0]: 60, keys[1]: None}
    assert limiter.blocked_keys(keys) == {keys[0]: 60}


def test_concurrent_failures_are_all_counted_and_exactly_the_limit_th_one_blocks(fake_redis):
    limiter = FailureLimiter(fake_redis, "t", limit=5, window_s=60)

    answers = failures_in_parallel(limiter, store_key(), threads=20)

    assert len(answers) == 20
    # counts 1..4 leave the key open; the 5th failure and all later ones see it blocked
    assert answers.count(None) == 4
    assert int(fake_redis.get(limiter.redis_key(store_key()))) == 20
    assert limiter.blocked(store_key()) == 60


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    """A client of the real server and a limiter name of this test's own; its keys are deleted after."""
    client = hotstate.connect(redis_url)
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield client, name
    for key in client.scan_iter(f"{hotstate.KEY_PREFIX}:{name}:*"):
        client.delete(key)
    client.close()


@pytest.mark.redis
def test_on_real_redis_concurrent_failures_count_exactly_expire_and_stay_namespaced(real_redis):
    client, name = real_redis
    limiter = FailureLimiter(client, name, limit=5, window_s=0.5)

    answers = failures_in_parallel(limiter, store_key(), threads=20)

    assert answers.count(None) == 4
    assert int(client.get(f"weika:limit:{name}:{MERCHANT}:{MODE}:store:sto_1")) == 20
    assert 0 < client.pttl(f"weika:limit:{name}:{MERCHANT}:{MODE}:store:sto_1") <= 500
    assert limiter.blocked(store_key()) == 1
    assert limiter.blocked(scope_key("mch_2", MODE, "store", "sto_1")) is None
    assert list(client.scan_iter(f"{hotstate.KEY_PREFIX}:{name}:*")) == [
        f"weika:limit:{name}:{MERCHANT}:{MODE}:store:sto_1".encode()]

    time.sleep(0.6)

    assert limiter.blocked(store_key()) is None
    assert client.exists(f"weika:limit:{name}:{MERCHANT}:{MODE}:store:sto_1") == 0
