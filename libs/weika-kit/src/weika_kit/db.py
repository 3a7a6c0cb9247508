"""Database access for a service: engine and sessions (SQLite or PostgreSQL), the kit's own tables, unit of work."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from weika_kit import context
from weika_kit.envelope import Envelope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


# SQLite keeps an INTEGER PRIMARY KEY as the rowid alias (autoincrementing); PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# Kafka refuses a record over its broker's message.max.bytes (1 MiB by default); an event stays well below.
MAX_EVENT_BYTES = 900 * 1024

class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both engines: SQLite stores naive text, so the zone is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: Weika stores timezone-aware UTC times only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


def define_kit_tables(metadata: MetaData) -> dict[str, Table]:
    """The outbox, the processed-events inbox and leases, in the service's own metadata."""
    outbox = Table(
        "kit_outbox",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("published_at", UTCDateTime(), nullable=True),
        Index("ix_kit_outbox_unpublished", "published_at", "id"),
    )
    inbox = Table(
        "kit_processed_events",
        metadata,
        Column("consumer_group", String(120), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("topic", String(200), nullable=False),
        Column("processed_at", UTCDateTime(), nullable=False),
    )
    leases = Table(
        "kit_leases",
        metadata,
        Column("name", String(120), primary_key=True),
        Column("holder", String(200), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
    )
    return {"outbox": outbox, "inbox": inbox, "leases": leases}


KIT_METADATA = MetaData()
KIT_TABLES = define_kit_tables(KIT_METADATA)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    if is_sqlite(url):
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" below open the transaction: BEGIN IMMEDIATE takes the write lock
            # up front, so concurrent writers queue on busy_timeout instead of failing to upgrade.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A read-only unit of work reads a WAL snapshot without the write lock, beside the writers.
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_timeout=30)


def create_database_if_missing(url: str) -> None:
    """PostgreSQL: create the service's database on the server when it does not exist yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first()
            if not exists:
                try:
                    conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
                    log.info("created database", extra={"database": parsed.database})
                except Exception:
                    # Another replica created it between our check and our CREATE.
                    if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                        {"n": parsed.database}).first():
                        raise
    finally:
        admin.dispose()


# The connection execution option that makes a SQLite unit of work read-only (BEGIN DEFERRED).
READ_ONLY_OPTION = "weika_read_only"

class Database:
    """One service's database: engine, session factory, and hooks told when outbox rows commit."""

    def __init__(self, url: str, *, service: str, pool_size: int = 8, clock: Clock = utcnow):
        self.url = url
        self.service = service
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.clock = clock
        self.on_outbox_commit: list[Callable[[], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A transaction; `read_only` ones may not commit or add events, and on SQLite do not take the write
        lock (so the many reads of a request path do not queue behind each other and the writers)."""
        return UnitOfWork(self, read_only=read_only)

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """One transaction: state changes and the events they cause commit together, or not at all.

    Rolls back unless `commit()` is called.
    """

    def __init__(self, db: Database, *, read_only: bool = False):
        self.db = db
        self.read_only = read_only
        self.session: Session
        self._events = 0
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        self.session = self.db.sessions()
        if self.read_only:
            # Procure the connection now, with the option the SQLite "begin" hook reads. On PostgreSQL a read-only
            # unit of work runs in autocommit: under READ COMMITTED every statement takes its own snapshot whether
            # or not it is inside a transaction, so the BEGIN and ROLLBACK round trips bought nothing.
            options: dict[str, Any] = {READ_ONLY_OPTION: True}
            if not self.db.is_sqlite:
                options["isolation_level"] = "AUTOCOMMIT"
            self.session.connection(execution_options=options)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                self.session.rollback()
        finally:
            self.session.close()

    def now(self) -> datetime:
        return self.db.clock()

    def add_event(self, payload: ProtoMessage, *, key: str | None = None, topic: str | None = None) -> Envelope:
        """Record an event in the outbox, in this transaction. Topic and key come from the topic registry
        (`topic` overrides it: tests use private topics)."""
        from weika_kit.topics import topic_for

        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot record events")
        info = topic_for(payload)
        key = key if key is not None else str(getattr(payload, info.key))
        if not key:
            raise ValueError(f"event {info.message} has an empty key field {info.key!r}")
        topic = topic or info.name
        body = payload.SerializeToString()
        if len(body) > MAX_EVENT_BYTES:
            # Refused here, with the state change, rather than committed to an outbox row the broker would refuse
            # for ever (and that would hold back every event behind it).
            raise ValueError(f"event {info.message} is {len(body)} bytes; the limit is {MAX_EVENT_BYTES}")
        merchant_id = str(getattr(payload, "merchant_id", "") or "")
        mode = str(getattr(payload, "mode", "") or "")
        caller = context.current_caller()
        if caller is not None:
            merchant_id = merchant_id or caller.merchant_id
            mode = mode or caller.mode
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source=f"/weika/{self.db.service}",
            type=topic,
            time=self.now(),
            subject=key,
            merchant_id=merchant_id,
            mode=mode,
            request_id=context.request_id() or "",
            dataschema=info.message,
        )
        if not self.db.is_sqlite:
            # Same-key events must reach the outbox in commit order: the id is taken at insert, so a later
            # transaction could otherwise commit a higher id first and the relay publish the two swapped.
            # (SQLite's BEGIN IMMEDIATE already serialises writers.)
            self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{topic}|{key}"})
        self.session.execute(
            insert(KIT_TABLES["outbox"]).values(
                event_id=envelope.id,
                topic=topic,
                key=key,
                payload=body,
                headers=json.dumps(envelope.to_dict()),
                created_at=envelope.time,
            )
        )
        self._events += 1
        return envelope

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.session.commit()
        self._committed = True
        if self._events:
            for hook in self.db.on_outbox_commit:
                hook()

    def rollback(self) -> None:
        self.session.rollback()

    def execute(self, statement: Any, params: Any = None) -> Any:
        return self.session.execute(statement, params)
