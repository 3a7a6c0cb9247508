"""The embedded event bus: a durable, partitioned log with Kafka semantics in one SQLite file shared by processes."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kafka.partitioner.default import murmur2

from weika_kit.bus import BusError, Message, OutgoingMessage, TopicSpec

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]

SCHEMA_VERSION = 1
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
BUSY_TIMEOUT_MS = 30_000
# Waiting consumers back off from MIN to MAX so an idle group costs little but a fresh message arrives fast.
MIN_IDLE_SLEEP_S = 0.02
MAX_IDLE_SLEEP_S = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL CHECK (partitions > 0),
    retention_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
-- next_offset lives here, not as MAX(msg_offset)+1, so offsets never restart after a purge.
CREATE TABLE IF NOT EXISTS bus_partitions (
    topic TEXT NOT NULL REFERENCES bus_topics(name),
    partition_id INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition_id)
);
CREATE TABLE IF NOT EXISTS bus_messages (
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    msg_offset INTEGER NOT NULL,
    msg_key BLOB,
    msg_value BLOB NOT NULL,
    headers TEXT,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition_id, msg_offset)
);
CREATE TABLE IF NOT EXISTS bus_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);
CREATE TABLE IF NOT EXISTS bus_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    topics TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    session_timeout_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
-- Who holds a partition right now: a member takes a partition only once the previous holder released it
-- (or was evicted), so a partition never has two readers, like Kafka's revoke-before-assign rebalance.
CREATE TABLE IF NOT EXISTS bus_claims (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    claimed_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);
"""


def kafka_partition(key: bytes | None, partitions: int) -> int:
    """The partition Kafka's default partitioner picks, so a key lands where it would on a real broker."""
    if key is None:
        return random.randrange(partitions)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def round_robin_assignment(
    subscriptions: Mapping[str, Collection[str]], partitions: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Kafka's RoundRobinAssignor: sorted members take sorted (topic, partition) pairs in turn.

    A member is skipped for a topic it does not subscribe to. Every member computes this from the same
    rows, so they agree on the outcome without a coordinator.
    """
    members = sorted(subscriptions)
    result: dict[str, set[TopicPartition]] = {member: set() for member in members}
    if not members:
        return result
    subscribed = {topic for topics in subscriptions.values() for topic in topics}
    pairs = sorted(
        (topic, p) for topic, count in partitions.items() if topic in subscribed for p in range(count)
    )
    cursor = 0
    for topic, p in pairs:
        for step in range(len(members)):
            member = members[(cursor + step) % len(members)]
            if topic in subscriptions[member]:
                result[member].add((topic, p))
                cursor = (cursor + step + 1) % len(members)
                break
    return result


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    if not headers:
        return None
    return json.dumps([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def _decode_headers(raw: str | None) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    return tuple((name, base64.b64decode(value)) for name, value in json.loads(raw))


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, got {type(value).__name__}")


def _connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the write lock up front and
    # never deadlocks upgrading a read transaction (which SQLITE_BUSY would otherwise report at once).
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        # Without WAL, readers block the writer and processes trip over each other; refuse rather than limp.
        raise BusError(
            f"the event log at {path} cannot use WAL (journal mode {mode}); is it on a local disk?"
        )
    # FULL fsyncs the WAL on every commit: publish and commit are durable across power loss once they return.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def _write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def _read_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # One snapshot for several SELECTs, so they agree with each other.
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _create_schema(conn: sqlite3.Connection) -> None:
    with _write_tx(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BusError(f"event log schema version {version} is newer than this code ({SCHEMA_VERSION})")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _topic_partitions(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, partitions FROM bus_topics").fetchall())


class EmbeddedLog:
    """An `EventBus` in one SQLite file that every process of `make run` opens.

    Thread-safe: the bus's own connection is guarded by a lock (SQLite admits one writer at a time anyway);
    each consumer has its own connection.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default_partitions: int = 3,
        session_timeout_s: float = 10.0,
        default_retention_ms: int = DEFAULT_RETENTION_MS,
        max_poll_interval_s: float = 300.0,
    ) -> None:
        if default_partitions < 1:
            raise ValueError("default_partitions must be at least 1")
        if session_timeout_s <= 0:
            raise ValueError("session_timeout_s must be positive")
        self.path = Path(path)
        self.default_partitions = default_partitions
        self.session_timeout_s = session_timeout_s
        # As Kafka's max.poll.interval.ms: a member that has not polled for this long stops heartbeating and
        # is evicted, however alive its process is; until then a slow handler keeps its partitions.
        self.max_poll_interval_s = max_poll_interval_s
        self.default_retention_ms = default_retention_ms
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._partition_counts: dict[str, int] = {}
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                _create_schema(self._connection())
        except sqlite3.Error as exc:
            raise BusError(f"cannot open the event log at {self.path}: {exc}") from exc

    # -- connection ---------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The bus connection; call with the lock held."""
        if self._closed:
            raise BusError("the event log is closed")
        if self._conn is None:
            self._conn = _connect(self.path)
        return self._conn

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        if self._pid != os.getpid():
            # A forked child must not touch the parent's SQLite handle (its locks belong to the parent), and
            # the lock may have been held by a parent thread at fork time.
            self._lock, self._conn, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            yield self._connection()

    # -- EventBus -----------------------------------------------------------------------------------------

    def ensure_topics(self, topics: Sequence[TopicSpec]) -> None:
        for spec in topics:
            if not spec.name or spec.partitions < 1:
                raise ValueError(f"invalid topic spec {spec!r}")
        try:
            with self._locked() as conn:
                with _write_tx(conn):
                    counts = {
                        s.name: self._create_topic(conn, s.name, s.partitions, s.retention_ms) for s in topics
                    }
                self._partition_counts.update(counts)
        except sqlite3.Error as exc:
            raise BusError(f"cannot create topics: {exc}") from exc

    def publish(self, messages: Sequence[OutgoingMessage], timeout_s: float = 30.0) -> None:
        if not messages:
            return
        prepared = [
            (
                m.topic,
                _as_bytes(m.key, "key") if m.key is not None else None,
                _as_bytes(m.value, "value"),
                _encode_headers(m.headers),
            )
            for m in messages
        ]
        if any(not topic for topic, *_ in prepared):
            raise ValueError("every message needs a topic")
        try:
            with self._locked() as conn:
                # timeout_s bounds the wait for other writers (busy_timeout), not the fsync itself.
                conn.execute(f"PRAGMA busy_timeout = {max(1, int(timeout_s * 1000))}")
                try:
                    counts = self._publish(conn, prepared)
                    # Partition counts never change once a topic exists, so caching them is safe across
                    # processes; only after COMMIT, since a rolled-back auto-create left no topic behind.
                    self._partition_counts.update(counts)
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise BusError(f"cannot publish {len(messages)} message(s): {exc}") from exc

    def _publish(
        self, conn: sqlite3.Connection, prepared: list[tuple[str, bytes | None, bytes, str | None]]
    ) -> dict[str, int]:
        with _write_tx(conn):
            # The timestamp is taken under the write lock, so it never decreases along a partition.
            now = _now_ms()
            counts = {topic: self._partitions_for_publish(conn, topic) for topic in {p[0] for p in prepared}}
            next_offsets: dict[TopicPartition, int] = {}
            rows = []
            for topic, key, value, headers in prepared:
                tp = (topic, kafka_partition(key, counts[topic]))
                if tp not in next_offsets:
                    next_offsets[tp] = conn.execute(
                        "SELECT next_offset FROM bus_partitions WHERE topic = ? AND partition_id = ?", tp
                    ).fetchone()[0]
                rows.append((topic, tp[1], next_offsets[tp], key, value, headers, now))
                next_offsets[tp] += 1
            conn.executemany(
                "INSERT INTO bus_messages (topic, partition_id, msg_offset, msg_key, msg_value, headers, timestamp_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "UPDATE bus_partitions SET next_offset = ? WHERE topic = ? AND partition_id = ?",
                [(offset, topic, p) for (topic, p), offset in next_offsets.items()],
            )
        return counts

    def _partitions_for_publish(self, conn: sqlite3.Connection, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._create_topic(
                conn, topic, self.default_partitions, self.default_retention_ms, auto=True
            )
        return count

    def _create_topic(
        self, conn: sqlite3.Connection, name: str, partitions: int, retention_ms: int, auto: bool = False
    ) -> int:
        """Create the topic unless it exists; return its partition count. Call inside a write transaction."""
        row = conn.execute("SELECT partitions FROM bus_topics WHERE name = ?", (name,)).fetchone()
        if row is not None:
            if not auto and row[0] != partitions:
                log.warning(
                    "topic %s exists with %d partitions, not the %d requested; keeping it",
                    name,
                    row[0],
                    partitions,
                )
            return int(row[0])
        conn.execute(
            "INSERT INTO bus_topics (name, partitions, retention_ms, created_ms) VALUES (?, ?, ?, ?)",
            (name, partitions, retention_ms, _now_ms()),
        )
        conn.executemany(
            "INSERT INTO bus_partitions (topic, partition_id, next_offset) VALUES (?, ?, 0)",
            [(name, p) for p in range(partitions)],
        )
        if auto:
            log.info("auto-created topic %s with %d partitions", name, partitions)
        return partitions

    def consumer(
        self, group_id: str, topics: Sequence[str], client_id: str | None = None
    ) -> EmbeddedConsumer:
        if self._closed:
            raise BusError("the event log is closed")
        return EmbeddedConsumer(self, group_id, topics, client_id)

    def close(self) -> None:
        """Close the bus's connection. Consumers have their own and are closed by their owners."""
        with self._lock:
            self._closed = True
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> EmbeddedLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- inspection (lag metrics, tests) -----------------------------------------------------------------

    def committed(self, group_id: str, topic: str, partition: int) -> int | None:
        """The group's next offset to read in that partition, None when it never committed there."""
        try:
            with self._locked() as conn:
                row = conn.execute(
                    "SELECT next_offset FROM bus_offsets WHERE group_id = ? AND topic = ? AND partition_id = ?",
                    (group_id, topic, partition),
                ).fetchone()
        except sqlite3.Error as exc:
            raise BusError(f"cannot read committed offsets: {exc}") from exc
        return None if row is None else int(row[0])

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next message will get; {} for an unknown topic."""
        try:
            with self._locked() as conn:
                rows = conn.execute(
                    "SELECT partition_id, next_offset FROM bus_partitions WHERE topic = ? ORDER BY partition_id",
                    (topic,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise BusError(f"cannot read end offsets: {exc}") from exc
        return {int(p): int(offset) for p, offset in rows}

    # -- retention ----------------------------------------------------------------------------------------

    def purge_expired(self, now_ms: int | None = None) -> int:
        """Delete messages older than their topic's retention that every known group has committed.

        Never called automatically: a supervisor may call it now and then. A group is known to a topic when
        it committed an offset in it or has a live member subscribed to it; a known group that has not
        committed a partition pins it entirely. A negative retention keeps messages forever. Offsets are
        not renumbered. Returns the number of messages deleted.
        """
        now = _now_ms() if now_ms is None else now_ms
        deleted = 0
        try:
            with self._locked() as conn, _write_tx(conn):
                topics = conn.execute("SELECT name, partitions, retention_ms FROM bus_topics").fetchall()
                member_rows = conn.execute("SELECT group_id, topics FROM bus_members").fetchall()
                for name, partitions, retention_ms in topics:
                    if retention_ms < 0:
                        continue
                    groups = {
                        g
                        for (g,) in conn.execute(
                            "SELECT DISTINCT group_id FROM bus_offsets WHERE topic = ?", (name,)
                        )
                    }
                    groups |= {g for g, subscribed in member_rows if name in json.loads(subscribed)}
                    for p in range(partitions):
                        floor = None
                        if groups:
                            committed = dict(
                                conn.execute(
                                    "SELECT group_id, next_offset FROM bus_offsets WHERE topic = ? AND partition_id = ?",
                                    (name, p),
                                ).fetchall()
                            )
                            floor = min(committed.get(g, 0) for g in groups)
                        sql = "DELETE FROM bus_messages WHERE topic = ? AND partition_id = ? AND timestamp_ms < ?"
                        params: tuple[object, ...] = (name, p, now - retention_ms)
                        if floor is not None:
                            sql += " AND msg_offset < ?"
                            params += (floor,)
                        deleted += conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise BusError(f"cannot purge expired messages: {exc}") from exc
        return deleted


@dataclass
class _GroupView:
    """What the rows say about the group at one instant, and what this member should do about it."""

    me_present: bool
    stale: list[str]
    desired: set[TopicPartition]
    mine: set[TopicPartition]
    release: set[TopicPartition]
    claimable: set[TopicPartition]

    @property
    def actionable(self) -> bool:
        return not self.me_present or bool(self.stale or self.release or self.claimable)


class EmbeddedConsumer:
    """A member of a consumer group on the embedded log. Not thread-safe: one thread polls and commits."""

    def __init__(
        self, bus: EmbeddedLog, group_id: str, topics: Sequence[str], client_id: str | None = None
    ) -> None:
        if not group_id:
            raise ValueError("group_id is required")
        if isinstance(topics, str):
            raise TypeError("topics must be a sequence of topic names, not a string")
        self._bus = bus
        self.group_id = group_id
        self.topics = tuple(sorted(set(topics)))
        self.client_id = client_id or "consumer"
        # Prefixing the client id keeps the assignment order readable; the uuid keeps member ids unique.
        self.member_id = f"{self.client_id}-{uuid.uuid4().hex}"
        self._session_timeout_ms = int(bus.session_timeout_s * 1000)
        self._heartbeat_interval_s = min(0.5, bus.session_timeout_s / 5)
        self._sync_interval_s = min(0.2, self._heartbeat_interval_s)
        try:
            self._conn = _connect(bus.path)
        except sqlite3.Error as exc:
            raise BusError(f"cannot open the event log at {bus.path}: {exc}") from exc
        self._joined = False
        self._closed = False
        self._owned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._last_sync = -math.inf
        self._last_heartbeat = -math.inf
        self._last_poll = time.monotonic()
        # Heartbeats from a thread of their own, as Kafka's client does, so a handler that runs longer than the
        # session timeout between two polls keeps its partitions (up to max_poll_interval_s).
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._rotation = 0
        # (data_version, owned) at the last empty fetch: unchanged means no new rows, so skip the queries.
        self._idle_state: tuple[int, frozenset[TopicPartition]] | None = None

    # -- Consumer -----------------------------------------------------------------------------------------

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        if self._closed:
            raise BusError("the consumer is closed")
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self._last_poll = time.monotonic()
        deadline = self._last_poll + max(0.0, timeout_s)
        sleep_s = MIN_IDLE_SLEEP_S
        try:
            while True:
                if time.monotonic() - self._last_sync >= self._sync_interval_s:
                    self._sync()
                records = self._fetch(max_records) if self._owned else []
                if records:
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(sleep_s, remaining))
                sleep_s = min(sleep_s * 1.5, MAX_IDLE_SLEEP_S)
        except sqlite3.Error as exc:
            raise BusError(f"poll failed for group {self.group_id}: {exc}") from exc

    def commit(self, messages: Iterable[Message]) -> None:
        if self._closed:
            raise BusError("the consumer is closed")
        upto: dict[TopicPartition, int] = {}
        for message in messages:
            tp = (message.topic, message.partition)
            upto[tp] = max(upto.get(tp, 0), message.offset + 1)
        if not upto:
            return
        now = _now_ms()
        # Commits for a partition this member has since lost are still stored: max() makes a late commit
        # harmless (it only records work that was really done), and keeping it saves the next owner a replay.
        try:
            with _write_tx(self._conn) as conn:
                conn.executemany(
                    "INSERT INTO bus_offsets (group_id, topic, partition_id, next_offset, updated_ms)"
                    " VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET"
                    " next_offset = max(next_offset, excluded.next_offset), updated_ms = excluded.updated_ms",
                    [(self.group_id, topic, p, offset, now) for (topic, p), offset in upto.items()],
                )
                # Free heartbeat: the write lock is held anyway. An eviction is noticed by the next poll.
                heartbeat_due = time.monotonic() - self._last_heartbeat >= self._heartbeat_interval_s
                if self._joined and heartbeat_due and self._heartbeat(conn, now):
                    self._last_heartbeat = time.monotonic()
        except sqlite3.Error as exc:
            raise BusError(f"commit failed for group {self.group_id}: {exc}") from exc

    def assignment(self) -> set[tuple[str, int]]:
        return set(self._owned)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=5)
        try:
            if self._joined:
                with _write_tx(self._conn) as conn:
                    self._leave(conn, self.member_id)
        except sqlite3.Error as exc:
            log.warning(
                "consumer %s could not leave group %s cleanly (%s); it will be evicted after %.1f s",
                self.member_id,
                self.group_id,
                exc,
                self._session_timeout_ms / 1000,
            )
        finally:
            self._owned.clear()
            self._positions.clear()
            self._conn.close()

    def __enter__(self) -> EmbeddedConsumer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset this member will read from an owned partition (in memory, not committed)."""
        return self._positions.get((topic, partition))

    def lag(self) -> dict[str, int]:
        """Per subscribed topic, how many messages of this member's partitions it has not read yet."""
        lag = dict.fromkeys(self.topics, 0)
        for topic in self.topics:
            for partition, end in self._bus.end_offsets(topic).items():
                position = self._positions.get((topic, partition))
                if position is not None:
                    lag[topic] += max(0, end - position)
        return lag

    # -- group membership ---------------------------------------------------------------------------------

    def _view(self, conn: sqlite3.Connection, now_ms: int) -> _GroupView:
        members = conn.execute(
            "SELECT member_id, topics, heartbeat_ms, session_timeout_ms FROM bus_members WHERE group_id = ?",
            (self.group_id,),
        ).fetchall()
        claims = dict(
            ((topic, p), member)
            for topic, p, member in conn.execute(
                "SELECT topic, partition_id, member_id FROM bus_claims WHERE group_id = ?", (self.group_id,)
            )
        )
        stale = [m for m, _, heartbeat, timeout in members if heartbeat + timeout < now_ms]
        live = {
            m: json.loads(topics)
            for m, topics, heartbeat, timeout in members
            if heartbeat + timeout >= now_ms
        }
        me_present = any(m == self.member_id for m, *_ in members)
        if me_present:
            # Even if my own heartbeat looks stale I count myself in: the write path refreshes it first.
            live[self.member_id] = list(self.topics)
        desired = round_robin_assignment(live, _topic_partitions(conn)).get(self.member_id, set())
        mine = {tp for tp, member in claims.items() if member == self.member_id}
        claimable = {tp for tp in desired - mine if claims.get(tp) is None or claims[tp] not in live}
        return _GroupView(me_present, stale, desired, mine, mine - desired, claimable)

    def _sync(self) -> None:
        """Heartbeat, evict the dead, and converge on this member's share of the partitions."""
        now_ms = _now_ms()
        heartbeat_due = (
            not self._joined or time.monotonic() - self._last_heartbeat >= self._heartbeat_interval_s
        )
        if self._joined:
            # Most syncs change nothing: decide that from a read snapshot instead of taking the write lock.
            with _read_tx(self._conn) as conn:
                view = self._view(conn, now_ms)
            self._last_sync = time.monotonic()
            # A failed light heartbeat means this member was evicted meanwhile: rejoin below.
            if (
                not view.actionable
                and view.mine == self._owned
                and (not heartbeat_due or self._light_heartbeat())
            ):
                return
        conn = self._conn
        with _write_tx(conn):
            now_ms = _now_ms()
            if not self._joined or not self._heartbeat(conn, now_ms):
                if self._joined:
                    log.warning(
                        "consumer %s was evicted from group %s (no poll for over %.1f s); rejoining",
                        self.member_id,
                        self.group_id,
                        self._session_timeout_ms / 1000,
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO bus_members"
                    " (group_id, member_id, client_id, topics, pid, heartbeat_ms, session_timeout_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.group_id,
                        self.member_id,
                        self.client_id,
                        json.dumps(list(self.topics)),
                        os.getpid(),
                        now_ms,
                        self._session_timeout_ms,
                    ),
                )
            view = self._view(conn, now_ms)
            for member in view.stale:
                log.info(
                    "evicting consumer %s from group %s: no heartbeat within its session timeout",
                    member,
                    self.group_id,
                )
                self._leave(conn, member)
            if view.stale:
                view = self._view(conn, now_ms)
            conn.executemany(
                "DELETE FROM bus_claims WHERE group_id = ? AND topic = ? AND partition_id = ? AND member_id = ?",
                [(self.group_id, topic, p, self.member_id) for topic, p in view.release],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO bus_claims (group_id, topic, partition_id, member_id, claimed_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                [(self.group_id, topic, p, self.member_id, now_ms) for topic, p in view.claimable],
            )
            owned = (view.mine - view.release) | view.claimable
            committed = dict(
                ((topic, p), offset)
                for topic, p, offset in conn.execute(
                    "SELECT topic, partition_id, next_offset FROM bus_offsets WHERE group_id = ?",
                    (self.group_id,),
                )
            )
        # Only now that the claims are durable does local state follow them.
        self._joined = True
        if self._heartbeat_thread is None:
            self._heartbeat_thread = threading.Thread(
                target=self._heartbeat_loop, name=f"heartbeat-{self.member_id}", daemon=True)
            self._heartbeat_thread.start()
        self._idle_state = None
        self._last_heartbeat = self._last_sync = time.monotonic()
        # A partition new to this member starts at the committed offset; one it kept keeps its position.
        self._positions = {
            tp: self._positions.get(tp, committed.get(tp, 0)) if tp in self._owned else committed.get(tp, 0)
            for tp in owned
        }
        if owned != self._owned:
            log.info("consumer %s in group %s now owns %s", self.member_id, self.group_id, sorted(owned))
        self._owned = owned

    def _heartbeat_loop(self) -> None:
        """Keep the membership alive between polls; never touches the poller's state (its own connection, and
        an eviction it meets is left for the next poll to notice and rejoin)."""
        interval = self._session_timeout_ms / 1000 / 3
        conn: sqlite3.Connection | None = None
        try:
            while not self._heartbeat_stop.wait(interval):
                now = time.monotonic()
                if now - self._last_heartbeat < interval or now - self._last_poll > self._bus.max_poll_interval_s:
                    continue  # the poller heartbeats itself; or it stopped polling and must lose its partitions
                try:
                    conn = conn or _connect(self._bus.path)
                    with _write_tx(conn):
                        conn.execute(
                            "UPDATE bus_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                            (_now_ms(), self.group_id, self.member_id),
                        )
                except sqlite3.Error as exc:
                    log.debug("background heartbeat of %s failed: %s", self.member_id, exc)
        finally:
            if conn is not None:
                conn.close()

    def _light_heartbeat(self) -> bool:
        """A heartbeat alone, without fsync; False when this member was evicted."""
        conn = self._conn
        # A heartbeat lost in a crash costs nothing (the crash ends the member anyway), so it need not pay
        # for an fsync; WAL keeps the file consistent either way.
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with _write_tx(conn):
                alive = self._heartbeat(conn, _now_ms())
        finally:
            conn.execute("PRAGMA synchronous = FULL")
        if alive:
            self._last_heartbeat = time.monotonic()
        return alive

    def _heartbeat(self, conn: sqlite3.Connection, now_ms: int) -> bool:
        """Refresh this member's heartbeat; False when its row is gone (it was evicted)."""
        updated = conn.execute(
            "UPDATE bus_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
            (now_ms, self.group_id, self.member_id),
        ).rowcount
        if updated == 0:
            # Its claims went with the eviction: positions in memory are for partitions it no longer holds.
            self._owned = set()
            self._positions = {}
        return updated > 0

    def _leave(self, conn: sqlite3.Connection, member_id: str) -> None:
        conn.execute(
            "DELETE FROM bus_members WHERE group_id = ? AND member_id = ?", (self.group_id, member_id)
        )
        conn.execute(
            "DELETE FROM bus_claims WHERE group_id = ? AND member_id = ?", (self.group_id, member_id)
        )

    # -- fetching -----------------------------------------------------------------------------------------

    def _fetch(self, max_records: int) -> list[Message]:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        state = (version, frozenset(self._owned))
        if state == self._idle_state:
            return []
        owned = sorted(self._owned)
        # Rotating the starting partition keeps one busy partition from starving the others.
        start = self._rotation % len(owned)
        self._rotation += 1
        active = owned[start:] + owned[:start]
        positions = dict(self._positions)
        records: list[Message] = []
        with _read_tx(self._conn) as conn:
            while active and len(records) < max_records:
                quota = max(1, math.ceil((max_records - len(records)) / len(active)))
                still_full = []
                for tp in active:
                    limit = min(quota, max_records - len(records))
                    if limit <= 0:
                        break
                    rows = conn.execute(
                        "SELECT msg_offset, msg_key, msg_value, headers, timestamp_ms FROM bus_messages"
                        " WHERE topic = ? AND partition_id = ? AND msg_offset >= ? ORDER BY msg_offset LIMIT ?",
                        (tp[0], tp[1], positions[tp], limit),
                    ).fetchall()
                    for offset, key, value, headers, timestamp_ms in rows:
                        records.append(
                            Message(tp[0], tp[1], offset, key, value, _decode_headers(headers), timestamp_ms)
                        )
                    if rows:
                        # Past the last row read, not position + count: purged gaps are skipped like Kafka's reset.
                        positions[tp] = rows[-1][0] + 1
                    if len(rows) == limit:
                        still_full.append(tp)
                active = still_full
        self._positions = positions
        self._idle_state = None if records else state
        return records
