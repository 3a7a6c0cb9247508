"""Two real redemption-service processes on one PostgreSQL database: 200 counters redeem one code at once, split
across both — exactly one success; a five-use coupon — exactly five."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bench.redemption_scaling import issue_codes, redeem_over_grpc, redemption_processes
from weika_kit import crypto
from weika_kit.errors import RemoteError

pytestmark = pytest.mark.postgres

COUNTERS = 200


@pytest.fixture
def secret_key(monkeypatch) -> str:
    """One key for this process (which issues the codes) and both service processes (which look them up)."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("WEIKA_SECRET_KEY", key)
    crypto._key.cache_clear()
    yield key
    crypto._key.cache_clear()


@pytest.fixture
def two_processes(fresh_postgres_database, secret_key, tmp_path: Path):
    """(issue, targets): `issue(max_uses)` gives a fresh code in the shared database; targets are the two processes."""
    url = fresh_postgres_database("redemption_two")
    issue_codes(url, 0)  # migrate before either process starts, so they do not race to migrate
    with redemption_processes(url, 2, secret_key=secret_key, var_dir=tmp_path) as targets:
        yield (lambda max_uses=1: issue_codes(url, 1, max_uses=max_uses)[0]), targets


def redeem_everywhere_at_once(code: str, targets: list[str]) -> Counter:
    """COUNTERS threads released together, alternating between the processes; outcome -> count."""
    barrier = threading.Barrier(COUNTERS)
    outcomes: list[str] = [""] * COUNTERS

    def counter(i: int) -> None:
        target = targets[i % len(targets)]
        barrier.wait()
        try:
            redeem_over_grpc(target, code, staff_id=f"stf_{i}")
            outcomes[i] = "ok"
        except RemoteError as refusal:
            outcomes[i] = refusal.code
        except Exception as error:  # noqa: BLE001 - anything unclean must show in the counts
            outcomes[i] = f"unclean: {error!r}"

    threads = [threading.Thread(target=counter, args=(i,)) for i in range(COUNTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return Counter(outcomes)


def test_two_hundred_counters_over_two_processes_redeem_one_code_exactly_once(two_processes):
    issue, targets = two_processes
    code = issue()

    outcome = redeem_everywhere_at_once(code, targets)

    assert outcome == Counter({"ok": 1, "coupon_already_redeemed": COUNTERS - 1})


def test_a_five_use_coupon_over_two_processes_is_redeemed_exactly_five_times(two_processes):
    issue, targets = two_processes
    code = issue(max_uses=5)

    outcome = redeem_everywhere_at_once(code, targets)

    assert outcome == Counter({"ok": 5, "coupon_already_redeemed": COUNTERS - 5})
