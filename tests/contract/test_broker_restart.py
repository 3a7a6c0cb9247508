"""No acknowledged event is lost when the broker restarts under load (Kafka) or the log's writer dies (embedded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from weika_kit.bus import TopicSpec

from tests.contract.conftest import ROOT
from tests.contract.test_event_bus_contract import consume

TOTAL = 400


def start_producer(bus_spec: str, topic: str, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.contract.app", "produce", "--bus", bus_spec, "--topic", topic,
         "--count", str(TOTAL), "--interval", "0.005"],
        cwd=ROOT, env=env, stdout=out.open("wb"), stderr=subprocess.DEVNULL)


def acked(out: Path) -> set[str]:
    return {f"o-{line.split()[1]}" for line in out.read_text().splitlines() if line.startswith("ACK ")}


def wait_for_acks(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(acked(out)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acked(out)) >= n


def consumed_ids(bus, topic: str, expected: int) -> set[str]:  # type: ignore[no-untyped-def]
    from weika.events.v1 import orders_pb2

    consumer = bus.consumer(f"audit-{topic}", [topic])
    messages = consume(consumer, expected, timeout=90)
    consumer.close()
    return {orders_pb2.OrderPaid.FromString(m.value).order_id for m in messages}


@pytest.mark.kafka
def test_kafka_broker_restart_under_load_loses_no_acknowledged_event(kafka_jars, tmp_path):
    from tools.infra import KafkaBroker
    from weika_kit.bus.kafka import KafkaBus

    broker = KafkaBroker(tmp_path / "broker", port=59192, controller_port=59193)
    broker.start()
    try:
        bus = KafkaBus(broker.bootstrap, client_id="restart-test")
        topic = "contract.restart"
        bus.ensure_topics([TopicSpec(topic, partitions=3)])
        out = tmp_path / "producer.out"
        producer = start_producer(f"kafka:{broker.bootstrap}", topic, out)
        wait_for_acks(out, 100)
        broker.kill()  # SIGKILL under load, then the same node comes back on the same data
        down_at = len(acked(out))
        broker.start()
        assert producer.wait(timeout=180) == 0
        acknowledged = acked(out)
        assert len(acknowledged) == TOTAL and down_at < TOTAL
        assert acknowledged <= consumed_ids(bus, topic, TOTAL)
        bus.close()
    finally:
        broker.stop()


def test_embedded_log_writer_killed_under_load_loses_no_acknowledged_event(tmp_path):
    from weika_kit.bus.embedded import EmbeddedLog

    spec = f"embedded:{tmp_path / 'events.sqlite3'}"
    log = EmbeddedLog(tmp_path / "events.sqlite3")
    topic = "contract.restart"
    log.ensure_topics([TopicSpec(topic, partitions=3)])
    out = tmp_path / "producer.out"
    producer = start_producer(spec, topic, out)
    wait_for_acks(out, 100)
    producer.send_signal(signal.SIGKILL)
    producer.wait()
    acknowledged = acked(out)
    assert 100 <= len(acknowledged) < TOTAL
    assert acknowledged <= consumed_ids(log, topic, len(acknowledged))
