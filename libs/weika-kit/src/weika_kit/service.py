"""Service defaults: one call gives a service its database, bus, gRPC server, relay, consumers and probes."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text

from weika_kit import logs, migrations
from weika_kit.bus import EventBus
from weika_kit.config import ServiceSettings, var_dir
from weika_kit.consumer import EventConsumer, Handler
from weika_kit.db import Database
from weika_kit.grpc_server import GrpcServer, Registration
from weika_kit.metrics import ProbeServer
from weika_kit.outbox import OutboxRelay

log = logging.getLogger(__name__)


def create_bus(settings: ServiceSettings) -> EventBus:
    """Kafka when KAFKA_BOOTSTRAP_SERVERS is set, else the embedded durable log under var/."""
    from weika_kit.topics import topic_specs

    bus: EventBus
    if settings.kafka_bootstrap_servers:
        from weika_kit.bus.kafka import KafkaBus

        bus = KafkaBus(settings.kafka_bootstrap_servers, client_id=settings.instance_id,
                       namespace=settings.kafka_namespace)
    else:
        from weika_kit.bus.embedded import EmbeddedLog

        bus = EmbeddedLog(var_dir() / "events.sqlite3", default_partitions=settings.topic_partitions)
    bus.ensure_topics(topic_specs(settings.topic_partitions))
    return bus


@dataclass
class ServiceDefinition:
    """What a service brings; the host supplies everything else."""

    name: str
    migrations: str  # Alembic script location
    registrations: Callable[[Database], Sequence[Registration]]
    grpc_service_names: Sequence[str]
    # consumer group suffix -> (topic -> handler); the group is "<service>.<suffix>"
    consumers: Callable[[Database], dict[str, dict[str, Handler]]] = field(default=lambda db: {})
    background: Callable[[Database, threading.Event], Sequence[Callable[[], None]]] = \
        field(default=lambda db, stop: ())


class ServiceHost:
    def __init__(self, definition: ServiceDefinition, settings: ServiceSettings | None = None,
                 bus: EventBus | None = None):
        self.definition = definition
        self.settings = settings or ServiceSettings.from_env(definition.name)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        migrations.upgrade(self.settings.database_url, definition.migrations)
        self.db = Database(self.settings.database_url, service=definition.name)
        self.bus = bus or create_bus(self.settings)
        self.relay = OutboxRelay(self.db, self.bus, holder=self.settings.instance_id)
        self.consumers = [
            EventConsumer(self.db, self.bus, group=f"{definition.name}.{suffix}", handlers=handlers,
                          client_id=self.settings.instance_id)
            for suffix, handlers in definition.consumers(self.db).items()
        ]
        self.grpc = GrpcServer(definition.name, self.settings.grpc_bind, definition.registrations(self.db),
                               definition.grpc_service_names)
        self.probes = ProbeServer(self.settings.http_port, {
            "database": self._database_ok,
            "consumers": lambda: all(c.running.is_set() for c in self.consumers),
        })

    def _database_ok(self) -> bool:
        with self.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> None:
        self._spawn("outbox-relay", lambda: self.relay.run(self.stop_event))
        for consumer in self.consumers:
            self._spawn(f"consumer-{consumer.group}", lambda c=consumer: c.run(self.stop_event))
        for i, task in enumerate(self.definition.background(self.db, self.stop_event)):
            self._spawn(f"background-{i}", task)
        self.grpc.start()
        self.probes.start()
        self.grpc.set_serving(True)
        log.info("service started", extra={"grpc_port": self.grpc.port, "http_port": self.probes.port})

    def stop(self) -> None:
        self.grpc.set_serving(False)
        self.stop_event.set()
        self.grpc.stop()
        for thread in self.threads:
            thread.join(timeout=10)
        self.probes.stop()
        self.bus.close()
        self.db.dispose()

    def serve_forever(self) -> None:
        stopped = threading.Event()

        def _on_signal(signum: int, _frame: object) -> None:
            log.info("stopping", extra={"signal": signum})
            stopped.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        self.start()
        stopped.wait()
        self.stop()


def main(definition: ServiceDefinition) -> None:
    """Console-script entry point shared by every service."""
    settings = ServiceSettings.from_env(definition.name)
    logs.configure(definition.name, settings.log_level)
    ServiceHost(definition, settings).serve_forever()
