"""Concurrent requests on SQLite and PostgreSQL: one store per code, one first answer (201) per Idempotency-Key."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from weika_gateway.__main__ import MIGRATIONS
from weika_gateway.adapters import tables as t
from weika_gateway.app import create_app
from weika_kit import migrations
from weika_kit.db import Database

THREADS = 8


def run_together(count: int, action: Callable[[], Any]) -> list[Any]:
    """Run `action` in `count` threads released at the same moment; their results in any order."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        outcome = action()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request) -> Iterator[Database]:
    if request.param == "sqlite":
        yield request.getfixturevalue("db")
        return
    url = request.getfixturevalue("fresh_postgres_database")("gateway")
    migrations.upgrade(url, MIGRATIONS)
    database = Database(url, service="gateway", pool_size=THREADS)
    yield database
    database.dispose()


@pytest.fixture
def concurrent_app(any_db, fake, settings, operator):
    app = create_app(any_db, clients=fake, settings=settings)
    keys = app.test_client().post("/v1/merchants", json={"name": "Tea"}, headers=operator).get_json()["api_keys"]
    return app, {"Authorization": f"Bearer {keys['live']}"}


def test_concurrent_stores_with_one_code_create_exactly_one(concurrent_app, any_db):
    app, headers = concurrent_app

    statuses = run_together(THREADS, lambda: app.test_client().post(
        "/v1/stores", json={"name": "Same", "code": "SH-001"}, headers=headers).status_code)

    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    with any_db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.stores)).scalar_one() == 1


def test_concurrent_replays_of_one_idempotency_key_give_one_201_and_the_same_order(concurrent_app, any_db,
                                                                                   order_body):
    app, headers = concurrent_app

    def create() -> tuple[int, str]:
        response = app.test_client().post("/v1/orders", json=order_body(),
                                          headers={**headers, "Idempotency-Key": "race-1"})
        return response.status_code, response.get_json()["id"]

    results = run_together(THREADS, create)

    assert sorted(status for status, _ in results) == [200] * (THREADS - 1) + [201]
    assert len({order_id for _, order_id in results}) == 1
    with any_db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.idempotency_records)).scalar_one() == 1
