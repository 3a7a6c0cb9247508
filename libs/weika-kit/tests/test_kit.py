"""Unit tests of the shared kit's pieces, with an in-memory bus and SQLite files."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from weika.events.v1 import orders_pb2
from weika_kit import config, context
from weika_kit.consumer import EventConsumer
from weika_kit.db import KIT_METADATA, KIT_TABLES, Database
from weika_kit.envelope import Envelope, EnvelopeError
from weika_kit.errors import Conflict, NotFound, RemoteError
from weika_kit.grpc_server import GrpcServer
from weika_kit.metrics import GRPC_HANDLED, ProbeServer
from weika_kit.outbox import Lease, OutboxRelay
from weika_kit.testing import FakeBus

METADATA = MetaData()
THINGS = Table("things", METADATA, Column("id", Integer, primary_key=True), Column("name", String(50)))
PAID_TOPIC = "weika.orders.order-paid.v1"


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'kit.sqlite3'}", service="kit-test")
    KIT_METADATA.create_all(database.engine)
    METADATA.create_all(database.engine)
    yield database
    database.dispose()


def paid(order_id: str) -> orders_pb2.OrderPaid:
    return orders_pb2.OrderPaid(order_id=order_id, merchant_id="m-1", mode="live", paid_amount=990)


def test_envelope_round_trips_through_cloudevents_headers():
    env = Envelope(id="e-1", source="/weika/orders", type=PAID_TOPIC, time=datetime(2026, 6, 18, 8, 0, tzinfo=UTC),
                   subject="o-1", merchant_id="m-1", mode="test", request_id="r-1", dataschema="weika.events.v1.OrderPaid")
    headers = dict(env.headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/protobuf"
    assert headers["ce_time"] == b"2026-06-18T08:00:00Z"
    assert headers["ce_merchantid"] == b"m-1" and headers["ce_mode"] == b"test"
    assert Envelope.from_headers(env.headers()) == env


def test_envelope_without_required_headers_is_refused():
    with pytest.raises(EnvelopeError, match="ce_specversion"):
        Envelope.from_headers([("ce_id", b"x")])
    env = Envelope(id="e", source="s", type="t", time=datetime.now(UTC), subject="k", merchant_id="m", mode="live")
    without_mode = [h for h in env.headers() if h[0] != "ce_mode"]
    with pytest.raises(EnvelopeError, match="ce_mode"):
        Envelope.from_headers(without_mode)


def test_database_url_prefers_own_url_then_postgres_server_then_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIKA_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    monkeypatch.delenv("WEIKA_ORDERS_DATABASE_URL", raising=False)
    assert config.database_url("orders") == f"sqlite:///{tmp_path / 'orders.sqlite3'}"
    monkeypatch.setenv("POSTGRES_URL", "postgresql://u:p@db:5432/postgres")
    assert config.database_url("orders") == "postgresql+psycopg://u:p@db:5432/weika_orders"
    monkeypatch.setenv("WEIKA_ORDERS_DATABASE_URL", "postgresql+psycopg://x@y/z")
    assert config.database_url("orders") == "postgresql+psycopg://x@y/z"


def test_unit_of_work_rolls_back_state_and_events_unless_committed(db):
    with db.unit_of_work() as uow:
        uow.execute(insert(THINGS).values(name="lost"))
        uow.add_event(paid("o-1"))
    with db.unit_of_work() as uow:
        uow.execute(insert(THINGS).values(name="kept"))
        uow.add_event(paid("o-2"))
        uow.commit()
    with db.engine.connect() as conn:
        assert [r.name for r in conn.execute(select(THINGS))] == ["kept"]
        rows = conn.execute(select(KIT_TABLES["outbox"])).all()
    assert [(r.topic, r.key) for r in rows] == [(PAID_TOPIC, "o-2")]
    assert json.loads(rows[0].headers)["merchant_id"] == "m-1"


def test_an_event_the_broker_would_refuse_for_ever_is_refused_with_its_transaction(db):
    from weika_kit.db import MAX_EVENT_BYTES

    huge = orders_pb2.OrderPaid(order_id="o-big", merchant_id="m-1", mode="test",
                                channel="x" * (MAX_EVENT_BYTES + 1))
    with pytest.raises(ValueError, match="limit"), db.unit_of_work() as uow:
        uow.add_event(huge)
        uow.commit()
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-small"))
        uow.commit()
    with db.engine.connect() as conn:
        assert [r.key for r in conn.execute(select(KIT_TABLES["outbox"]))] == ["o-small"]


def test_a_read_only_unit_of_work_reads_beside_a_writer_and_cannot_write(db):
    with db.unit_of_work() as uow:
        uow.execute(insert(THINGS).values(name="old"))
        uow.commit()
    seen: list[list[str]] = []
    with db.unit_of_work() as writer:  # holds SQLite's write lock until it ends
        writer.execute(insert(THINGS).values(name="uncommitted"))

        def read() -> None:
            with db.unit_of_work(read_only=True) as reader:
                seen.append([r.name for r in reader.execute(select(THINGS))])

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(10)  # a reader that queued for the write lock would still be waiting (busy_timeout is 30 s)
        assert seen == [["old"]]
        writer.commit()
    with db.unit_of_work(read_only=True) as reader:
        with pytest.raises(RuntimeError, match="read-only"):
            reader.add_event(paid("o-ro"))
        with pytest.raises(RuntimeError, match="read-only"):
            reader.commit()



@pytest.mark.postgres
def test_on_postgresql_a_read_only_unit_of_work_runs_without_a_transaction_and_the_next_writer_still_has_one(
        fresh_postgres_database):
    db = Database(fresh_postgres_database("kit_read_only"), service="kit-test", pool_size=1)
    try:
        METADATA.create_all(db.engine)
        with db.unit_of_work(read_only=True) as reader:
            reader.execute(select(func.count()).select_from(THINGS))
            # in a transaction now() is the transaction's start, earlier than a later statement's own start
            assert reader.execute(select(func.now() == func.statement_timestamp())).scalar_one() is True
        # the same pooled connection, handed back from autocommit: a unit of work still rolls back unless committed
        with db.unit_of_work() as writer:
            writer.execute(insert(THINGS).values(name="rolled back"))
            assert writer.execute(select(func.now() == func.statement_timestamp())).scalar_one() is False
        with db.unit_of_work() as writer:
            writer.execute(insert(THINGS).values(name="kept"))
            writer.commit()
        with db.unit_of_work(read_only=True) as reader:
            assert [r.name for r in reader.execute(select(THINGS))] == ["kept"]
            with pytest.raises(RuntimeError, match="read-only"):
                reader.commit()
    finally:
        db.dispose()

def test_relay_publishes_in_order_retries_after_failure_and_marks_sent(db):
    bus = FakeBus()
    relay = OutboxRelay(db, bus, holder="a")
    for i in range(5):
        with db.unit_of_work() as uow:
            uow.add_event(paid(f"o-{i}"))
            uow.commit()
    bus.fail_next_publishes = 1
    with pytest.raises(Exception, match="broker unavailable"):
        relay.publish_pending()
    assert relay.backlog() == 5  # nothing marked sent when the publish failed
    assert relay.publish_pending() == 5
    assert relay.backlog() == 0
    assert [orders_pb2.OrderPaid.FromString(m.value).order_id for m in bus.log[PAID_TOPIC]] == \
        [f"o-{i}" for i in range(5)]
    assert relay.publish_pending() == 0


def test_only_one_relay_holds_the_lease_until_it_expires(db):
    first, second = Lease(db, "outbox-relay", "a", ttl_s=30), Lease(db, "outbox-relay", "b", ttl_s=30)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()


def test_a_publish_ends_within_the_lease_so_no_second_relay_publishes_alongside(db):
    class SlowBus(FakeBus):
        def publish(self, messages, timeout_s=30.0):
            # While this relay publishes, its lease must hold; the bus is told to give up within half of it.
            seen.append((timeout_s, Lease(db, "outbox-relay", "b", ttl_s=10).acquire()))
            super().publish(messages, timeout_s)

    seen: list[tuple[float, bool]] = []
    relay = OutboxRelay(db, SlowBus(), holder="a", lease_ttl_s=10)
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-1"))
        uow.commit()
    assert relay.publish_pending() == 1
    assert seen == [(5.0, False)]


def test_a_relay_whose_lease_was_taken_over_publishes_nothing(db):
    bus = FakeBus()
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    db.clock = lambda: clock[0]
    slow, other = OutboxRelay(db, bus, holder="a", lease_ttl_s=10), Lease(db, "outbox-relay", "b", ttl_s=10)
    assert slow.lease.acquire()
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-1"))
        uow.commit()
    clock[0] += timedelta(seconds=11)  # "a" stalled past its lease; "b" took over
    assert other.acquire()
    assert slow.publish_pending() == 0
    assert bus.log.get(PAID_TOPIC, []) == [] and slow.backlog() == 1


def test_relay_thread_publishes_soon_after_commit(db):
    bus = FakeBus()
    relay = OutboxRelay(db, bus, holder="a", idle_wait_s=5)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        with db.unit_of_work() as uow:
            uow.add_event(paid("o-9"))
            uow.commit()  # wakes the relay instead of waiting out idle_wait_s
        for _ in range(100):
            if bus.log.get(PAID_TOPIC):
                break
            stop.wait(0.02)
        assert len(bus.log[PAID_TOPIC]) == 1
    finally:
        stop.set()
        relay.wake()
        thread.join(5)


def test_consumer_applies_each_event_once_even_when_redelivered(db):
    bus = FakeBus()
    for i in range(3):
        with db.unit_of_work() as uow:
            uow.add_event(paid(f"o-{i}"))
            uow.commit()
    OutboxRelay(db, bus, holder="a").publish_pending()
    seen_callers = []

    def apply(event, uow):
        seen_callers.append(context.current_caller())
        uow.execute(insert(THINGS).values(name=event.payload.order_id))

    consumer = EventConsumer(db, bus, group="g", handlers={PAID_TOPIC: apply})
    outcomes = [consumer.process(m) for m in bus.log[PAID_TOPIC]]
    outcomes += [consumer.process(m) for m in bus.log[PAID_TOPIC]]  # redelivered
    assert outcomes == ["applied"] * 3 + ["duplicate"] * 3
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(THINGS)).scalar_one() == 3
    assert seen_callers[0] == context.Caller("m-1", "live", role="system")


def test_failing_handler_is_retried_then_dead_lettered_with_its_error(db):
    bus = FakeBus()
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-1"))
        uow.commit()
    OutboxRelay(db, bus, holder="a").publish_pending()
    attempts = []

    def apply(event, uow):
        uow.execute(insert(THINGS).values(name="half-written"))
        attempts.append(1)
        raise RuntimeError("downstream refused")

    consumer = EventConsumer(db, bus, group="g", handlers={PAID_TOPIC: apply}, max_attempts=3, retry_backoff_s=0)
    assert consumer.process(bus.log[PAID_TOPIC][0]) == "dead_lettered"
    assert len(attempts) == 3
    dead = bus.log[PAID_TOPIC + ".dlq"][0]
    assert dead.header("x-weika-dlq-error") == b"RuntimeError: downstream refused"
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(THINGS)).scalar_one() == 0  # nothing half-written


class _Echo:
    """A raw gRPC service (bytes in, bytes out) to exercise the interceptor without generated stubs."""

    def __init__(self):
        self.seen = []

    def register(self, server):
        def echo(request, ctx):
            self.seen.append((context.current_caller(), context.request_id()))
            if request == b"missing":
                raise NotFound("no such thing", code="thing_not_found", details={"thing_id": "t-1"})
            if request == b"taken":
                raise Conflict("already taken", code="thing_taken")
            if request == b"boom":
                raise RuntimeError("bug")
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler})])


@pytest.fixture
def echo_server():
    echo = _Echo()
    server = GrpcServer("kit-test", "127.0.0.1:0", [echo.register], ["test.Echo"], max_workers=2)
    server.start()
    server.set_serving(True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    echo.target = f"127.0.0.1:{server.port}"
    yield echo, channel.unary_unary("/test.Echo/Echo")
    channel.close()
    server.stop(0)


def test_domain_errors_cross_grpc_with_their_stable_code_and_details(echo_server):
    echo, call = echo_server
    with pytest.raises(grpc.RpcError) as caught:
        call(b"missing")
    remote = RemoteError.from_rpc_error(caught.value)
    assert remote.status == grpc.StatusCode.NOT_FOUND
    assert (remote.code, remote.message, remote.details) == ("thing_not_found", "no such thing", {"thing_id": "t-1"})
    with pytest.raises(grpc.RpcError) as caught:
        call(b"taken")
    assert RemoteError.from_rpc_error(caught.value).status == grpc.StatusCode.FAILED_PRECONDITION


def test_unexpected_errors_become_internal_without_a_traceback(echo_server):
    _, call = echo_server
    with pytest.raises(grpc.RpcError) as caught:
        call(b"boom")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "bug" not in caught.value.details() and "internal error" in caught.value.details()


def test_interceptor_binds_caller_and_request_id_and_counts_calls(echo_server):
    echo, call = echo_server
    caller = context.Caller("m-7", "test", staff_id="s-1", role="clerk", store_ids=("st-1", "st-2"))
    before = GRPC_HANDLED.labels("kit-test", "Echo", "OK")._value.get()
    assert call(b"hi", metadata=[(context.MD_REQUEST_ID, "req-42"), *caller.to_metadata()]) == b"hi"
    assert echo.seen[-1] == (caller, "req-42")
    assert GRPC_HANDLED.labels("kit-test", "Echo", "OK")._value.get() == before + 1


def test_probe_server_reports_readiness_per_check():
    healthy = {"value": False}
    probes = ProbeServer(0, {"database": lambda: healthy["value"]}, host="127.0.0.1")
    probes.start()
    base = f"http://127.0.0.1:{probes.port}"
    try:
        assert urllib.request.urlopen(base + "/healthz").status == 200
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + "/readyz")
        assert not_ready.value.code == 503
        assert json.loads(not_ready.value.read())["checks"] == {"database": False}
        healthy["value"] = True
        assert urllib.request.urlopen(base + "/readyz").status == 200
        assert b"weika_grpc_server_handled_total" in urllib.request.urlopen(base + "/metrics").read()
    finally:
        probes.stop()


def test_times_come_back_timezone_aware_utc_from_sqlite(db):
    from datetime import timedelta, timezone

    shanghai = timezone(timedelta(hours=8))
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-tz"))
        uow.commit()
    with db.engine.connect() as conn:
        created = conn.execute(select(KIT_TABLES["outbox"].c.created_at)).scalar_one()
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive datetime"), db.engine.begin() as conn:
        conn.execute(insert(KIT_TABLES["leases"]).values(name="x", holder="h", expires_at=datetime(2026, 1, 1)))
    with db.engine.begin() as conn:
        conn.execute(insert(KIT_TABLES["leases"]).values(
            name="y", holder="h", expires_at=datetime(2026, 1, 1, 8, tzinfo=shanghai)))
        stored = conn.execute(select(KIT_TABLES["leases"].c.expires_at).where(KIT_TABLES["leases"].c.name == "y"))
        assert stored.scalar_one() == datetime(2026, 1, 1, 0, tzinfo=UTC)


def test_a_handler_declaring_a_poison_message_dead_letters_it_without_retries(db):
    from weika_kit.consumer import PoisonMessage

    bus = FakeBus()
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-1"))
        uow.commit()
    OutboxRelay(db, bus, holder="a").publish_pending()
    attempts = []

    def apply(event, uow):
        attempts.append(1)
        raise PoisonMessage("payload merchant differs from envelope")

    consumer = EventConsumer(db, bus, group="g", handlers={PAID_TOPIC: apply}, max_attempts=5, retry_backoff_s=0)
    assert consumer.process(bus.log[PAID_TOPIC][0]) == "dead_lettered"
    assert len(attempts) == 1
    assert bus.log[PAID_TOPIC + ".dlq"][0].header("x-weika-dlq-error").startswith(b"poison:")


def test_health_and_reflection_are_served_beside_the_service(echo_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    echo, _ = echo_server
    with grpc.insecure_channel(echo.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="test.Echo")).status == \
            health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = list(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in answer.list_services_response.service}
        assert {"test.Echo", "grpc.health.v1.Health"} <= names


def test_logs_are_json_lines_carrying_service_request_and_merchant(capsys):
    import logging

    from weika_kit import logs

    logs.configure("kit-test", "INFO")
    try:
        with context.bound(caller=context.Caller("m-9", "live"), request_id="req-7"):
            logging.getLogger("weika.test").info("coupon redeemed", extra={"coupon_id": "c-1"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(line)
    assert record["message"] == "coupon redeemed" and record["level"] == "INFO"
    assert (record["service"], record["request_id"], record["merchant_id"], record["mode"]) == \
        ("kit-test", "req-7", "m-9", "live")
    assert record["coupon_id"] == "c-1"
    assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0


def test_an_outage_is_never_dead_lettered_the_message_waits_for_redelivery(db):
    from sqlalchemy.exc import OperationalError

    from weika_kit.consumer import TransientFailure

    bus = FakeBus()
    with db.unit_of_work() as uow:
        uow.add_event(paid("o-1"))
        uow.commit()
    OutboxRelay(db, bus, holder="a").publish_pending()
    database_up = {"value": False}

    def apply(event, uow):
        if not database_up["value"]:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        uow.execute(insert(THINGS).values(name=event.payload.order_id))

    consumer = EventConsumer(db, bus, group="g", handlers={PAID_TOPIC: apply}, max_attempts=2, retry_backoff_s=0)
    with pytest.raises(TransientFailure):
        consumer.process(bus.log[PAID_TOPIC][0])
    assert PAID_TOPIC + ".dlq" not in bus.log
    database_up["value"] = True
    assert consumer.process(bus.log[PAID_TOPIC][0]) == "applied"


def test_a_peer_restarted_on_the_same_address_is_reached_again_by_the_shared_channel():
    """A service pod restarts on its old address: the shared channel, which kept failing to reconnect while it was
    gone (round_robin backs off), must reach the new process on the next call instead of failing fast."""
    from weika_kit import grpc_client

    echo = _Echo()
    first = GrpcServer("kit-test", "127.0.0.1:0", [echo.register], ["test.Echo"], max_workers=2)
    first.start()
    target = f"127.0.0.1:{first.port}"
    call = grpc_client.channel(target).unary_unary("/test.Echo/Echo")
    try:
        assert grpc_client.call(call, b"hello") == b"hello"
        first.stop(0)
        # While the peer is down, calls fail as unavailable (no one answered) and reconnects back off.
        with pytest.raises(RemoteError) as caught:
            grpc_client.call(call, b"anyone?", timeout_s=2.0)
        assert caught.value.status == grpc.StatusCode.UNAVAILABLE
        time.sleep(3.0)  # long enough for the channel's reconnect backoff to have grown past a second
        second = GrpcServer("kit-test", target, [echo.register], ["test.Echo"], max_workers=2)
        second.start()
        try:
            assert grpc_client.call(call, b"back") == b"back"
        finally:
            second.stop(0)
    finally:
        grpc_client.forget(target)
