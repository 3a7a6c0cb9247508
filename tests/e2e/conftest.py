"""The running platform for end-to-end tests, in both modes: embedded, and Kafka + PostgreSQL + Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.e2e.platform import SERVICES, Platform

MODES = ["embedded", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.postgres, pytest.mark.redis])]


@pytest.fixture(scope="session", params=MODES)
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    var_dir = tmp_path_factory.mktemp(f"platform-{request.param}")
    extra: dict[str, str] = {}
    databases: list[str] = []
    server = None
    if request.param == "kafka":
        server = request.getfixturevalue("postgres_server_url")
        extra["KAFKA_BOOTSTRAP_SERVERS"] = request.getfixturevalue("kafka_bootstrap")
        extra["REDIS_URL"] = request.getfixturevalue("redis_url")
        # Topics and groups of its own on the shared broker: a second test run at the same time, or a platform
        # left from another test, never takes this platform's partitions or reads its events.
        extra["WEIKA_KAFKA_NAMESPACE"] = f"e2e-{uuid.uuid4().hex[:8]}."
        base = server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        for name in (*SERVICES, "gateway"):
            database = f"e2e_{name}_{uuid.uuid4().hex[:8]}"
            databases.append(database)  # created by the service itself on start-up
            extra[f"WEIKA_{name.upper()}_DATABASE_URL"] = f"{base}/{database}"
    platform = Platform(var_dir, extra_env=extra)
    platform.mode = request.param  # type: ignore[attr-defined]
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
        if server is not None:
            with psycopg.connect(server, autocommit=True) as conn:
                for database in databases:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
