"""The event-bus contract: the same promises hold on the embedded log and on Apache Kafka.

Each test runs twice (stack fixture): embedded log + SQLite, and Kafka + PostgreSQL.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select

from tests.contract.app import EFFECTS, LEDGER, order_paid
from tests.contract.conftest import ROOT
from weika_kit.bus import Message, OutgoingMessage, TopicSpec
from weika_kit.envelope import Envelope


def outgoing(topic: str, key: str, seq: int, *, headers: bool = True, order_id: str | None = None) -> OutgoingMessage:
    order_id = order_id or f"{key}:{seq}"
    env = Envelope(id=f"{topic}:{key}:{seq}", source="/weika/contract", type=topic, time=datetime.now(UTC),
                   subject=key, merchant_id="m-1", mode="test")
    return OutgoingMessage(topic, key.encode(), order_paid(order_id).SerializeToString(),
                           env.headers() if headers else ())


def consume(consumer, expected: int, timeout: float = 60.0) -> list[Message]:  # type: ignore[no-untyped-def]
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        batch = consumer.poll(timeout_s=0.5)
        got.extend(batch)
        consumer.commit(batch)
    return got


def count(db_url: str, table, column) -> collections.Counter:  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return collections.Counter(row[0] for row in conn.execute(select(column)))
    finally:
        engine.dispose()


def test_messages_of_one_key_arrive_in_publish_order(stack):
    bus = stack.open_bus()
    topic = stack.topic("order")
    bus.ensure_topics([TopicSpec(topic, partitions=3)])
    keys = [f"k{i}" for i in range(7)]
    bus.publish([outgoing(topic, keys[i % 7], i) for i in range(350)])
    consumer = bus.consumer(f"g-{topic}", [topic])
    got = consume(consumer, 350)
    consumer.close()
    bus.close()

    assert len(got) == 350
    by_key: dict[bytes, list[int]] = collections.defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = collections.defaultdict(set)
    for m in got:
        by_key[m.key].append(int(m.header("ce_id").decode().rsplit(":", 1)[1]))
        partitions_of_key[m.key].add(m.partition)
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"key {key!r} out of order"
        assert len(partitions_of_key[key]) == 1


def test_two_consumers_in_one_group_share_the_partitions(stack):
    """Two members in two processes, as two replicas of a service would be."""
    bus = stack.open_bus()
    topic = stack.topic("share")
    bus.ensure_topics([TopicSpec(topic, partitions=4)])
    stop_file = stack.tmp / f"stop-{topic}"
    outputs = {name: stack.tmp / f"{name}-{topic}.out" for name in ("first", "second")}
    members = {name: subprocess.Popen(
        [sys.executable, "-m", "tests.contract.app", "member", "--bus", stack.bus_spec, "--topic", topic,
         "--group", f"g-{topic}", "--prefix", name, "--stop-file", str(stop_file)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=out.open("w"), stderr=out.with_suffix(".log").open("w"))
        for name, out in outputs.items()}

    def report(name: str) -> tuple[set[int], list[tuple[int, str]]]:
        owned: set[int] = set()
        got = []
        for line in outputs[name].read_text().splitlines():
            if line.startswith("ASSIGNED"):
                owned = {int(p) for p in line.split()[1:]}
            elif line.startswith("GOT "):
                _, partition, event_id = line.split()
                got.append((int(partition), event_id))
        return owned, got

    try:
        # Both members must have joined before the data arrives, so that the group has settled.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            owned = {name: report(name)[0] for name in members}
            if owned["first"] and owned["second"] and not owned["first"] & owned["second"] \
                    and len(owned["first"] | owned["second"]) == 4:
                break
            time.sleep(0.2)
        bus.publish([outgoing(topic, f"k{i}", i) for i in range(200)])
        deadline = time.monotonic() + 60
        while sum(len(report(name)[1]) for name in members) < 200 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_file.touch()
        for member in members.values():
            member.wait(timeout=60)
        bus.close()

    assert owned["first"] and owned["second"], f"both members own partitions: {owned}"
    assert not owned["first"] & owned["second"], "no partition is owned twice"
    got = {name: report(name)[1] for name in members}
    ids = [event_id for batch in got.values() for _, event_id in batch]
    assert len(ids) == 200 and len(set(ids)) == 200
    assert got["first"] and got["second"]
    assert not {p for p, _ in got["first"]} & {p for p, _ in got["second"]}


def test_consumer_killed_after_effect_before_commit_applies_the_effect_once(stack):
    topic = stack.topic("crash-consumer")
    stack.open_bus().ensure_topics([TopicSpec(topic, partitions=1)])
    stack.app("source", "--db", stack.db_url, "--topic", topic, "--count", "5")

    crashed = stack.app("sink", "--db", stack.db_url, "--topic", topic, "--group", "sink", "--expect", "5",
                        faults="consumer.after_effect_before_commit", check=False)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert sum(count(stack.db_url, EFFECTS, EFFECTS.c.order_id).values()) >= 1  # the effect was committed

    stack.app("sink", "--db", stack.db_url, "--topic", topic, "--group", "sink", "--expect", "5")
    effects = count(stack.db_url, EFFECTS, EFFECTS.c.order_id)
    assert effects == {f"o-{i}": 1 for i in range(5)}


def test_service_killed_between_commit_and_publish_publishes_after_restart(stack):
    topic = stack.topic("crash-relay")
    bus = stack.open_bus()
    bus.ensure_topics([TopicSpec(topic, partitions=3)])

    crashed = stack.app("source", "--db", stack.db_url, "--topic", topic, "--count", "3",
                        faults="relay.before_publish", check=False)
    assert crashed.returncode == -9 and "COMMITTED" in crashed.stdout
    assert sum(count(stack.db_url, LEDGER, LEDGER.c.order_id).values()) == 3
    probe = bus.consumer(f"probe-{topic}", [topic])
    assert consume(probe, 1, timeout=5) == [], "nothing was published before the crash"
    probe.close()

    stack.app("relay", "--db", stack.db_url)  # the service restarts: its relay publishes the backlog
    stack.app("sink", "--db", stack.db_url, "--topic", topic, "--group", "sink", "--expect", "3")
    assert count(stack.db_url, EFFECTS, EFFECTS.c.order_id) == {"o-0": 1, "o-1": 1, "o-2": 1}
    bus.close()


def test_service_killed_after_publish_before_marking_sent_is_applied_once(stack):
    topic = stack.topic("crash-mark")
    bus = stack.open_bus()
    bus.ensure_topics([TopicSpec(topic, partitions=3)])

    crashed = stack.app("source", "--db", stack.db_url, "--topic", topic, "--count", "3",
                        faults="relay.after_publish", check=False)
    assert crashed.returncode == -9
    stack.app("relay", "--db", stack.db_url)  # publishes the same three events a second time

    reader = bus.consumer(f"reader-{topic}", [topic])
    delivered = consume(reader, 6, timeout=30)
    reader.close()
    assert len(delivered) == 6, "at-least-once: the rows were sent twice"
    stack.app("sink", "--db", stack.db_url, "--topic", topic, "--group", "sink", "--expect", "3", "--linger", "2")
    assert count(stack.db_url, EFFECTS, EFFECTS.c.order_id) == {"o-0": 1, "o-1": 1, "o-2": 1}
    bus.close()


def test_poison_messages_go_to_the_dead_letter_topic_and_the_rest_flow(stack):
    topic = stack.topic("poison")
    bus = stack.open_bus()
    bus.ensure_topics([TopicSpec(topic, partitions=1), TopicSpec(topic + ".dlq", partitions=1)])
    bus.publish([
        outgoing(topic, "a", 1, order_id="good-1"),
        OutgoingMessage(topic, b"b", b"\xff\xfe not a protobuf", ()),  # no envelope, garbage payload
        outgoing(topic, "c", 2, order_id="poison-2"),  # the handler always fails on it
        outgoing(topic, "d", 3, order_id="good-3"),
    ])
    stack.app("sink", "--db", stack.db_url, "--topic", topic, "--group", "sink", "--expect", "2", "--linger", "2")

    assert count(stack.db_url, EFFECTS, EFFECTS.c.order_id) == {"good-1": 1, "good-3": 1}
    dlq = bus.consumer(f"dlq-{topic}", [topic + ".dlq"])
    dead = consume(dlq, 2, timeout=30)
    dlq.close()
    bus.close()
    assert sorted(m.key for m in dead) == [b"b", b"c"]
    errors = {m.key: m.header("x-weika-dlq-error").decode() for m in dead}
    assert "undecodable" in errors[b"b"]
    assert "cannot apply poison-2" in errors[b"c"]
    assert all(m.header("x-weika-dlq-group") == b"sink" for m in dead)


def test_lag_counts_the_messages_a_member_has_not_read(stack):
    bus = stack.open_bus()
    topic = stack.topic("lag")
    bus.ensure_topics([TopicSpec(topic, partitions=1)])
    bus.publish([outgoing(topic, "k", i) for i in range(6)])
    consumer = bus.consumer(f"g-{topic}", [topic])
    got: list[Message] = []
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        got = consumer.poll(timeout_s=0.5, max_records=2)
    lag = consumer.lag()
    consumer.close()
    bus.close()
    assert len(got) == 2
    assert lag == {topic: 4}


@pytest.mark.kafka
def test_two_platforms_in_their_own_namespaces_share_a_broker_without_meeting(kafka_bootstrap):
    """Same topic names, same group id, one broker: each platform reads only its own events, and the broker holds
    them under the namespaced topic a partner subscribes to."""
    from kafka import KafkaAdminClient

    from weika_kit.bus.kafka import KafkaBus

    topic, run = "weika.contract.order-paid.v1", uuid.uuid4().hex[:8]
    buses = {ns: KafkaBus(kafka_bootstrap, client_id=f"ns-{ns}", session_timeout_ms=6000, namespace=ns)
             for ns in (f"a-{run}.", f"b-{run}.")}
    try:
        for ns, bus in buses.items():
            bus.ensure_topics([TopicSpec(topic, partitions=2)])
            bus.publish([outgoing(topic, f"{ns}k{i}", i) for i in range(5)])
        for ns, bus in buses.items():
            consumer = bus.consumer("g-shared", [topic])
            got = consume(consumer, 5)
            time.sleep(1.0)  # anything from the other namespace would have arrived by now, too
            got += consumer.poll(timeout_s=0.5)
            assert consumer.assignment() == {(topic, 0), (topic, 1)}
            consumer.close()
            assert sorted(m.key.decode() for m in got) == [f"{ns}k{i}" for i in range(5)]
            assert {m.topic for m in got} == {topic}
            assert bus.end_offsets(topic) and sum(bus.end_offsets(topic).values()) == 5
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            assert {f"a-{run}.{topic}", f"b-{run}.{topic}"} <= set(admin.list_topics())
        finally:
            admin.close()
    finally:
        for bus in buses.values():
            bus.close()
