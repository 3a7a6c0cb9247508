"""A minimal service built on weika_kit, run as a real process by the contract tests so they can kill it.

  source  --db URL --bus SPEC --topic T --count N   commit N state changes, each with its event, then relay
  relay   --db URL --bus SPEC                        publish what the outbox holds, then exit
  sink    --db URL --bus SPEC --topic T --group G --expect N   apply events idempotently until N are applied
  produce --bus SPEC --topic T --count N             publish one by one, printing "ACK i" once durable
SPEC is `embedded:<path>` or `kafka:<bootstrap>`. WEIKA_FAULTS=<crash point> kills the process there.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from weika.events.v1 import orders_pb2
from weika_kit.bus import EventBus, OutgoingMessage
from weika_kit.consumer import Event, EventConsumer
from weika_kit.db import KIT_METADATA, Database, UnitOfWork
from weika_kit.envelope import Envelope
from weika_kit.outbox import OutboxRelay

METADATA = MetaData()
LEDGER = Table("ledger", METADATA, Column("id", Integer, primary_key=True), Column("order_id", String(64)))
EFFECTS = Table("effects", METADATA, Column("id", Integer, primary_key=True),
                Column("event_id", String(64)), Column("order_id", String(64)))


def open_bus(spec: str, client_id: str = "contract") -> EventBus:
    kind, _, where = spec.partition(":")
    if kind == "embedded":
        from weika_kit.bus.embedded import EmbeddedLog

        return EmbeddedLog(where, session_timeout_s=2.0)
    from weika_kit.bus.kafka import KafkaBus

    return KafkaBus(where, client_id=client_id, session_timeout_ms=6000)


def open_db(url: str) -> Database:
    db = Database(url, service="contract")
    KIT_METADATA.create_all(db.engine)
    METADATA.create_all(db.engine)
    return db


def order_paid(order_id: str, amount: int = 100) -> orders_pb2.OrderPaid:
    return orders_pb2.OrderPaid(order_id=order_id, merchant_id="m-1", mode="test", paid_amount=amount)


def drain_outbox(db: Database, bus: EventBus) -> None:
    relay = OutboxRelay(db, bus, holder=f"contract-{time.monotonic_ns()}")
    while relay.backlog():
        if not relay.lease.acquire():
            time.sleep(0.5)
            continue
        relay.publish_pending()


def cmd_source(args: argparse.Namespace) -> None:
    db, bus = open_db(args.db), open_bus(args.bus)
    for i in range(args.count):
        with db.unit_of_work() as uow:
            order_id = f"{args.prefix}{i}"
            uow.execute(insert(LEDGER).values(order_id=order_id))
            uow.add_event(order_paid(order_id), topic=args.topic)
            uow.commit()
    print("COMMITTED", flush=True)
    drain_outbox(db, bus)
    bus.close()


def cmd_relay(args: argparse.Namespace) -> None:
    db, bus = open_db(args.db), open_bus(args.bus)
    drain_outbox(db, bus)
    bus.close()


def cmd_sink(args: argparse.Namespace) -> None:
    db, bus = open_db(args.db), open_bus(args.bus)

    def apply(event: Event, uow: UnitOfWork) -> None:
        if event.payload.order_id.startswith("poison"):
            raise ValueError(f"cannot apply {event.payload.order_id}")
        uow.execute(insert(EFFECTS).values(event_id=event.envelope.id, order_id=event.payload.order_id))

    consumer = EventConsumer(db, bus, group=args.group, handlers={args.topic: apply}, max_attempts=2,
                             retry_backoff_s=0.05, payload_types={args.topic: orders_pb2.OrderPaid})
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            applied = conn.execute(select(func.count(func.distinct(EFFECTS.c.order_id)))).scalar_one()
        if applied >= args.expect:
            break
        time.sleep(0.2)
    # Let the loop commit what it applied before leaving.
    time.sleep(args.linger)
    stop.set()
    thread.join(timeout=20)
    bus.close()
    print(f"APPLIED {applied}", flush=True)


def cmd_produce(args: argparse.Namespace) -> None:
    bus = open_bus(args.bus)
    for i in range(args.count):
        envelope_headers = Envelope(id=f"evt-{i}", source="/weika/contract", type=args.topic,
                                    time=datetime.now(UTC),
                                    subject=f"o-{i}", merchant_id="m-1", mode="test").headers()
        while True:
            try:
                bus.publish([OutgoingMessage(args.topic, f"o-{i}".encode(),
                                             order_paid(f"o-{i}").SerializeToString(), envelope_headers)],
                            timeout_s=10)
                break
            except Exception as exc:  # the broker is down: not acknowledged, try again
                print(f"RETRY {i} {type(exc).__name__}", flush=True)
                time.sleep(0.2)
        print(f"ACK {i}", flush=True)
        time.sleep(args.interval)
    bus.close()


def cmd_member(args: argparse.Namespace) -> None:
    """One replica of a group member: report assignment changes and every message, until the stop file exists."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bus = open_bus(args.bus, client_id=args.prefix)
    consumer = bus.consumer(args.group, [args.topic], client_id=args.prefix)
    owned: set = set()
    stop_file = Path(args.stop_file)
    while not stop_file.exists():
        batch = consumer.poll(timeout_s=0.2)
        for message in batch:
            print(f"GOT {message.partition} {message.header('ce_id').decode()}", flush=True)
        consumer.commit(batch)
        if consumer.assignment() != owned:
            owned = consumer.assignment()
            print("ASSIGNED " + " ".join(str(p) for _, p in sorted(owned)), flush=True)
    consumer.close()
    bus.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("source", "relay", "sink", "produce", "member"):
        p = sub.add_parser(name)
        p.add_argument("--bus", required=True)
        p.add_argument("--db")
        p.add_argument("--topic")
        p.add_argument("--count", type=int, default=0)
        p.add_argument("--prefix", default="o-")
        p.add_argument("--group")
        p.add_argument("--expect", type=int, default=0)
        p.add_argument("--timeout", type=float, default=60)
        p.add_argument("--linger", type=float, default=1.0)
        p.add_argument("--interval", type=float, default=0.0)
        p.add_argument("--stop-file")
    args = parser.parse_args(argv)
    {"source": cmd_source, "relay": cmd_relay, "sink": cmd_sink, "produce": cmd_produce,
     "member": cmd_member}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
