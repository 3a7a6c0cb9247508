"""The shared fixtures hand out real PostgreSQL, Redis and Kafka servers, and `tools/infra.py up` is idempotent."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.postgres
def test_postgres_is_a_real_server(postgres_server_url: str) -> None:
    import psycopg

    assert postgres_server_url.startswith("postgresql://")
    with psycopg.connect(postgres_server_url, connect_timeout=10) as conn:
        version = conn.execute("select version()").fetchone()
    assert version is not None and "PostgreSQL" in version[0]


@pytest.mark.postgres
def test_fresh_postgres_database_is_created_usable_and_dropped(
    postgres_server_url: str, fresh_postgres_database: Callable[[str], str]
) -> None:
    import psycopg
    import sqlalchemy as sa

    url = fresh_postgres_database("infra check")
    assert url.startswith("postgresql+psycopg://")
    name = url.rsplit("/", 1)[1]
    assert name.startswith("infra_check_")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (id int primary key, v text)"))
            conn.execute(sa.text("insert into t values (1, 'é')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("select v from t")).scalar_one() == "é"
            assert conn.execute(sa.text("select current_database()")).scalar_one() == name
    finally:
        engine.dispose()
    with psycopg.connect(postgres_server_url, connect_timeout=10) as conn:
        assert conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() == (1,)


@pytest.mark.redis
def test_redis_is_a_real_server(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"weika:test-infra:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "value", ex=60)
        assert client.get(key) == b"value"
        assert "redis_version" in client.info("server")
    finally:
        client.delete(key)
        client.close()


@pytest.mark.kafka
def test_kafka_is_a_real_broker(kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"test.infra.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="test-infra")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        assert topic in admin.list_topics()

        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        sent = {f"v{i}".encode() for i in range(20)}
        for i, value in enumerate(sorted(sent)):
            producer.send(topic, key=f"k{i % 4}".encode(), value=value).get(timeout=30)
        producer.close()

        consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"g-{topic}",
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        received: set[bytes] = set()
        deadline = time.monotonic() + 60
        while received != sent and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                received.update(r.value for r in records)
        consumer.commit()
        consumer.close()
        assert received == sent
    finally:
        admin.delete_topics([topic])
        admin.close()


def _up() -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "infra.py"), "up"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - started, proc


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.kafka
@pytest.mark.timeout(1500)  # a cold first `up` may install packages and fetch jars
def test_infra_up_is_idempotent() -> None:
    _, first = _up()
    _, second = _up()
    exports = [line for line in second.stdout.splitlines() if line.startswith("export ")]
    assert [line.split("=", 1)[0] for line in exports] == [
        "export POSTGRES_URL", "export REDIS_URL", "export KAFKA_BOOTSTRAP_SERVERS"]
    assert second.stdout == first.stdout
    for server in ("postgres", "redis", "kafka"):
        assert f"{server}: reusing" in second.stderr, second.stderr
    assert "started" not in second.stderr and "launched" not in second.stderr
