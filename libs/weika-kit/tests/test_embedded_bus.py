"""The embedded log keeps Kafka's semantics across threads and processes sharing one SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

import weika_kit
from weika_kit.bus import BusError, Message, OutgoingMessage, TopicSpec
from weika_kit.bus.embedded import EmbeddedConsumer, EmbeddedLog, kafka_partition, round_robin_assignment

SRC_DIR = Path(weika_kit.__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "events.sqlite3"


@pytest.fixture
def bus(db: Path) -> Iterable[EmbeddedLog]:
    log = EmbeddedLog(db, session_timeout_s=2.0)
    yield log
    log.close()


def out(topic: str, key: str, value: str, headers: tuple[tuple[str, bytes], ...] = ()) -> OutgoingMessage:
    return OutgoingMessage(topic, key.encode(), value.encode(), headers)


def drain(
    consumer: EmbeddedConsumer, count: int, timeout_s: float = 10.0, commit: bool = False
) -> list[Message]:
    """Poll until `count` messages arrived (or the timeout), optionally committing each batch."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        batch = consumer.poll(timeout_s=0.1)
        if commit:
            consumer.commit(batch)
        got += batch
    return got


def settle(
    consumers: list[EmbeddedConsumer], every: set[tuple[str, int]], timeout_s: float = 10.0
) -> list[Message]:
    """Poll every member until their assignments partition `every`; return what the polls brought."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assignments = [c.assignment() for c in consumers]
        union = set().union(*assignments)
        if union == every and sum(map(len, assignments)) == len(every) and all(assignments):
            return got
        for c in consumers:
            got += c.poll(timeout_s=0.05)
    raise AssertionError(f"assignments never settled: {[c.assignment() for c in consumers]}")


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC_DIR), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_partition_matches_kafka_default_partitioner(bus: EmbeddedLog) -> None:
    # Partitions Kafka's Java client picks for these keys among 1000 partitions (kafka-python's own vectors).
    for key, expected in [
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ]:
        assert kafka_partition(key, 1000) == expected
    bus.ensure_topics([TopicSpec("orders", partitions=7)])
    keys = [f"order-{i}" for i in range(50)]
    bus.publish([out("orders", key, key) for key in keys])
    consumer = bus.consumer("g", ["orders"])
    got = drain(consumer, len(keys))
    assert len(got) == len(keys)
    for message in got:
        assert message.key is not None
        assert message.partition == (murmur2(message.key) & 0x7FFFFFFF) % 7
    consumer.close()


def test_per_key_order_over_1000_messages(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=4)])
    keys = [f"k{i}" for i in range(7)]
    sent = [(keys[i % 7], i) for i in range(1000)]
    for start in range(0, 1000, 50):
        bus.publish([out("t", key, str(seq)) for key, seq in sent[start : start + 50]])
    consumer = bus.consumer("g", ["t"])
    got = drain(consumer, 1000)
    assert len(got) == 1000
    per_key: dict[bytes, list[int]] = defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    per_partition: dict[int, list[int]] = defaultdict(list)
    for message in got:
        assert message.key is not None
        per_key[message.key].append(int(message.value))
        partitions_of_key[message.key].add(message.partition)
        per_partition[message.partition].append(message.offset)
    for key in keys:
        assert per_key[key.encode()] == [seq for k, seq in sent if k == key]
        assert len(partitions_of_key[key.encode()]) == 1
    for partition, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), "offsets start at 0, dense, in order"
        assert bus.end_offsets("t")[partition] == len(offsets)
    consumer.close()


def test_topics_are_kept_and_unknown_ones_auto_created(db: Path) -> None:
    with EmbeddedLog(db, default_partitions=5) as bus:
        bus.ensure_topics([TopicSpec("fixed", partitions=2)])
        bus.ensure_topics([TopicSpec("fixed", partitions=9)])
        assert bus.end_offsets("fixed") == {0: 0, 1: 0}
        assert bus.end_offsets("nowhere") == {}
        bus.publish([out("fresh", "k", "v")])
        assert sorted(bus.end_offsets("fresh")) == [0, 1, 2, 3, 4]
        assert sum(bus.end_offsets("fresh").values()) == 1
    # Another instance (another process in real life) sees the same counts.
    with EmbeddedLog(db, default_partitions=1) as other:
        other.publish([out("fresh", "k", "v2")])
        assert sum(other.end_offsets("fresh").values()) == 2
        assert len(other.end_offsets("fresh")) == 5


def test_headers_keys_and_timestamps_round_trip(bus: EmbeddedLog) -> None:
    before = int(time.time() * 1000)
    bus.publish(
        [out("t", "k", "v", headers=(("trace", b"\x00\xff"), ("type", b"OrderPlaced"))), out("t", "", "")]
    )
    consumer = bus.consumer("g", ["t"])
    got = sorted(drain(consumer, 2), key=lambda m: m.value)
    assert [m.value for m in got] == [b"", b"v"]
    assert got[0].key == b"" and got[0].headers == ()
    assert got[1].header("trace") == b"\x00\xff" and got[1].header("type") == b"OrderPlaced"
    assert all(before <= m.timestamp_ms <= int(time.time() * 1000) for m in got)
    consumer.close()


def test_group_shares_partitions_and_survivor_takes_over_uncommitted(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=4)])
    every = {("t", p) for p in range(4)}
    first = bus.consumer("g", ["t"], client_id="a")
    second = bus.consumer("g", ["t"], client_id="b")
    settle([first, second], every)
    assert first.assignment().isdisjoint(second.assignment())
    assert len(first.assignment()) == len(second.assignment()) == 2

    bus.publish([out("t", f"key-{i}", str(i)) for i in range(40)])
    ends = bus.end_offsets("t")
    count_of = {owner: sum(ends[p] for _, p in owner.assignment()) for owner in (first, second)}
    got_first = drain(first, count_of[first], commit=True)
    got_second = drain(second, count_of[second])  # processed, never committed
    assert {(m.topic, m.partition) for m in got_first} <= first.assignment()
    assert {(m.topic, m.partition) for m in got_second} <= second.assignment()
    assert len(got_first) + len(got_second) == 40

    second.close()
    redelivered = settle([first], every)
    redelivered += drain(first, len(got_second) - len(redelivered))
    assert sorted((m.partition, m.offset) for m in redelivered) == sorted(
        (m.partition, m.offset) for m in got_second
    )
    assert first.poll(timeout_s=0.3) == [], "what the survivor committed is not delivered again"
    first.close()


def test_separate_group_reads_everything_independently(bus: EmbeddedLog) -> None:
    bus.publish([out("t", f"key-{i}", str(i)) for i in range(30)])
    orders = bus.consumer("orders", ["t"])
    drain(orders, 30, commit=True)
    analytics = bus.consumer("analytics", ["t"])
    got = drain(analytics, 30)
    assert sorted(int(m.value) for m in got) == list(range(30))
    assert all(bus.committed("analytics", "t", p) is None for p in range(3))
    assert sum(bus.committed("orders", "t", p) or 0 for p in range(3)) == 30
    orders.close()
    analytics.close()


def test_uncommitted_messages_are_redelivered_and_committed_ones_are_not(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=2)])
    bus.publish([out("t", f"key-{i}", str(i)) for i in range(20)])
    consumer = bus.consumer("g", ["t"])
    got = drain(consumer, 20)
    # Commit the first half of each partition, as if the process died midway through its batch.
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for message in got:
        by_partition[message.partition].append(message)
    done = [m for messages in by_partition.values() for m in messages[: len(messages) // 2]]
    consumer.commit(done)
    consumer.close()

    restarted = bus.consumer("g", ["t"])
    again = drain(restarted, 20 - len(done))
    assert sorted(int(m.value) for m in again) == sorted(int(m.value) for m in got if m not in done)
    assert restarted.poll(timeout_s=0.3) == []
    restarted.commit(again)
    restarted.close()
    assert drain(bus.consumer("g", ["t"]), 1, timeout_s=0.5) == []


def test_position_advances_without_commit(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=1)])
    bus.publish([out("t", "k", str(i)) for i in range(10)])
    consumer = bus.consumer("g", ["t"])
    first = consumer.poll(timeout_s=2, max_records=4)
    second = consumer.poll(timeout_s=2, max_records=4)
    assert [int(m.value) for m in first + second] == list(range(8))
    assert consumer.position("t", 0) == 8
    assert bus.committed("g", "t", 0) is None
    consumer.close()


def test_commit_never_moves_backwards(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=1)])
    bus.publish([out("t", "k", str(i)) for i in range(12)])
    consumer = bus.consumer("g", ["t"])
    got = drain(consumer, 12)
    consumer.commit([got[10]])
    assert bus.committed("g", "t", 0) == 11
    consumer.commit([got[3]])
    consumer.commit(got[:5])
    assert bus.committed("g", "t", 0) == 11
    consumer.commit([])
    consumer.close()
    late = bus.consumer("g", ["t"])
    assert [int(m.value) for m in drain(late, 1)] == [11]
    late.close()


def test_fetch_is_fair_across_partitions(bus: EmbeddedLog) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=3)])
    keys = {kafka_partition(f"k{i}".encode(), 3): f"k{i}" for i in range(20)}
    bus.publish([out("t", keys[p], str(i)) for p in range(3) for i in range(50)])
    consumer = bus.consumer("g", ["t"])
    batch = consumer.poll(timeout_s=2, max_records=30)
    counts = defaultdict(int)
    for message in batch:
        counts[message.partition] += 1
    assert len(batch) == 30 and set(counts.values()) == {10}
    consumer.close()


def test_assignment_is_round_robin_over_sorted_members_and_pairs() -> None:
    assignment = round_robin_assignment({"b": ["x"], "a": ["x", "y"]}, {"x": 3, "y": 2, "z": 4})
    assert assignment == {"a": {("x", 0), ("x", 2), ("y", 0), ("y", 1)}, "b": {("x", 1)}}
    assert round_robin_assignment({}, {"x": 3}) == {}


def test_a_slow_handler_keeps_its_partitions_past_the_session_timeout(db: Path) -> None:
    """As with Kafka, liveness is heartbeated in the background: a member busy for three session timeouts
    between two polls is not evicted, and the other member never takes its partitions meanwhile."""
    with EmbeddedLog(db, session_timeout_s=1.0) as bus:
        bus.ensure_topics([TopicSpec("t", partitions=2)])
        every = {("t", 0), ("t", 1)}
        busy = bus.consumer("g", ["t"], client_id="a")
        other = bus.consumer("g", ["t"], client_id="b")
        settle([busy, other], every)
        share = other.assignment()
        end = time.monotonic() + 3.0  # `busy` is inside a long handler: no poll at all
        while time.monotonic() < end:
            other.poll(timeout_s=0.1)
            assert other.assignment() == share
        assert len(busy.poll(timeout_s=0.1)) == 0 and busy.assignment() == every - share
        busy.close()
        other.close()


def test_paused_member_is_evicted_and_rejoins(db: Path) -> None:
    # past max_poll_interval_s without a poll, a member stops heartbeating (Kafka's max.poll.interval.ms)
    with EmbeddedLog(db, session_timeout_s=1.0, max_poll_interval_s=1.5) as bus:
        bus.ensure_topics([TopicSpec("t", partitions=2)])
        every = {("t", 0), ("t", 1)}
        active = bus.consumer("g", ["t"], client_id="a")
        paused = bus.consumer("g", ["t"], client_id="b")
        settle([active, paused], every)
        deadline = time.monotonic() + 5
        while active.assignment() != every and time.monotonic() < deadline:
            active.poll(timeout_s=0.1)  # `paused` stops polling, like a process stuck in a long handler
        assert active.assignment() == every
        settle([active, paused], every)  # it rejoins on its next poll and gets its share back
        active.close()
        paused.close()


def test_many_threads_share_one_bus(bus: EmbeddedLog) -> None:
    def publish(worker: int) -> None:
        for i in range(20):
            bus.publish([out("t", f"w{worker}", f"{worker}:{i}")])

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    consumer = bus.consumer("g", ["t"])
    got = drain(consumer, 120)
    for worker in range(6):
        assert [m.value.decode() for m in got if m.key == f"w{worker}".encode()] == [
            f"{worker}:{i}" for i in range(20)
        ]
    consumer.close()


def test_closed_consumer_and_bus_refuse_work(bus: EmbeddedLog) -> None:
    consumer = bus.consumer("g", ["t"])
    consumer.close()
    consumer.close()
    with pytest.raises(BusError):
        consumer.poll(timeout_s=0)
    bus.close()
    with pytest.raises(BusError):
        bus.publish([out("t", "k", "v")])


def test_purge_deletes_only_expired_messages_every_group_committed(bus: EmbeddedLog) -> None:
    bus.ensure_topics(
        [TopicSpec("t", partitions=1, retention_ms=1000), TopicSpec("forever", 1, retention_ms=-1)]
    )
    bus.publish([out("t", "k", str(i)) for i in range(10)] + [out("forever", "k", "v")])
    fast = bus.consumer("fast", ["t"])
    fast.commit(drain(fast, 10))
    slow = bus.consumer("slow", ["t"])
    slow.commit(slow.poll(timeout_s=2, max_records=4))
    later = int(time.time() * 1000) + 60_000
    assert bus.purge_expired(now_ms=later) == 4  # `slow` still needs offsets 4..9
    slow.commit(drain(slow, 6))
    assert bus.purge_expired(now_ms=later) == 6
    assert bus.end_offsets("t") == {0: 10}, "offsets are not renumbered"
    bus.publish([out("t", "k", "10")])
    assert [m.offset for m in drain(fast, 1)] == [10]
    fast.close()
    slow.close()


KILLED_CONSUMER = """
import sys, time
from weika_kit.bus.embedded import EmbeddedLog
bus = EmbeddedLog(sys.argv[1], session_timeout_s=1.0)
consumer = bus.consumer("g", ["t"], client_id="doomed")
got = []
deadline = time.monotonic() + 20
while len(got) < int(sys.argv[2]) and time.monotonic() < deadline:
    got += consumer.poll(timeout_s=0.2)
print("polled", len(got), sorted(consumer.assignment()), flush=True)
while True:
    consumer.poll(timeout_s=0.1)  # alive and heartbeating, never committing
"""


def test_killed_consumer_loses_its_partitions_after_the_session_timeout(db: Path) -> None:
    with EmbeddedLog(db, session_timeout_s=1.0) as bus:
        bus.publish([out("t", f"key-{i}", str(i)) for i in range(30)])
        child = spawn(KILLED_CONSUMER, db, 30)
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("polled 30 "), line
        finally:
            child.kill()  # SIGKILL: no close, no goodbye
            child.wait(timeout=10)
        killed_at = time.monotonic()
        heir = bus.consumer("g", ["t"], client_id="heir")
        got = drain(heir, 30)
        took = time.monotonic() - killed_at
        assert sorted(int(m.value) for m in got) == list(range(30))
        assert heir.assignment() == {("t", 0), ("t", 1), ("t", 2)}
        # The child heartbeated at most ~0.2 s before dying, so its partitions cannot move much before 1 s.
        assert 0.5 <= took < 8, took
        heir.close()


PUBLISHER = """
import os, sys, time
from weika_kit.bus import OutgoingMessage
from weika_kit.bus.embedded import EmbeddedLog
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
bus = EmbeddedLog(path, default_partitions=4)
print("ready", flush=True)
while not os.path.exists(path + ".go"):
    time.sleep(0.005)
seq = 0
while seq < count:
    size = min(1 + seq % 5, count - seq)
    bus.publish([OutgoingMessage("t", f"k{j % 4}".encode(), f"{name}:{j}".encode()) for j in range(seq, seq + size)])
    seq += size
bus.close()
"""


def test_concurrent_publishers_in_three_processes(db: Path) -> None:
    db.parent.mkdir(parents=True)
    # The children race to create the fresh file too, like `make run` starting every service at once.
    children = [spawn(PUBLISHER, db, f"p{i}", 300) for i in range(3)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        Path(f"{db}.go").touch()
        for child in children:
            assert child.wait(timeout=60) == 0
    finally:
        for child in children:
            child.kill()
    with EmbeddedLog(db) as bus:
        ends = bus.end_offsets("t")
        assert sum(ends.values()) == 900
        consumer = bus.consumer("verify", ["t"])
        got = drain(consumer, 900)
        consumer.close()
    values = [m.value.decode() for m in got]
    assert len(values) == len(set(values)) == 900, "every message stored exactly once"
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for message in got:
        by_partition[message.partition].append(message)
    for partition, messages in by_partition.items():
        assert [m.offset for m in messages] == list(range(ends[partition])), "dense offsets from 0"
    for name in ("p0", "p1", "p2"):
        for key in (b"k0", b"k1", b"k2", b"k3"):
            seqs = [
                int(v.split(":")[1])
                for m in got
                if m.key == key
                for v in [m.value.decode()]
                if v.startswith(name)
            ]
            assert seqs == sorted(seqs) and len(seqs) == 75


LATE_PUBLISHER = """
import sys
from weika_kit.bus import OutgoingMessage
from weika_kit.bus.embedded import EmbeddedLog
with EmbeddedLog(sys.argv[1]) as bus:
    bus.publish([OutgoingMessage("t", f"k{i}".encode(), f"from-child-{i}".encode()) for i in range(5)])
"""


def test_publish_in_one_process_reaches_a_waiting_consumer_in_another(bus: EmbeddedLog, db: Path) -> None:
    bus.ensure_topics([TopicSpec("t", partitions=3)])
    consumer = bus.consumer("g", ["t"])
    assert consumer.poll(timeout_s=0.3) == []  # idle: the consumer is now backing off
    child = spawn(LATE_PUBLISHER, db)
    try:
        got = drain(consumer, 5)
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    assert sorted(m.value for m in got) == [f"from-child-{i}".encode() for i in range(5)]
    consumer.close()
