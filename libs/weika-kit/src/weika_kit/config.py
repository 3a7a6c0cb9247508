"""Configuration from environment variables with embedded defaults (12-factor): unset means embedded."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("catalog", "orders", "redemption", "marketing", "analytics")
DEFAULT_GRPC_PORTS = {"catalog": 50051, "orders": 50052, "redemption": 50053, "marketing": 50054, "analytics": 50055}
DEFAULT_HTTP_PORTS = {"catalog": 9101, "orders": 9102, "redemption": 9103, "marketing": 9104, "analytics": 9105}
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_EMBEDDED_REDIS_PORT = 56380


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def var_dir() -> Path:
    """Where embedded state lives (SQLite files, the embedded event log, generated secrets)."""
    path = Path(env("WEIKA_VAR_DIR", "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def service_address(service: str) -> str:
    """host:port where `service` serves gRPC, as other services dial it."""
    return env(f"WEIKA_{service.upper()}_GRPC_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS[service]}")


def database_url(service: str) -> str:
    """The service's own database: its own URL, else its database on POSTGRES_URL's server, else SQLite."""
    own = env(f"WEIKA_{service.upper()}_DATABASE_URL")
    if own:
        return own
    server = env("POSTGRES_URL")
    if server:
        return postgres_database_url(server, f"weika_{service}")
    return f"sqlite:///{var_dir() / (service + '.sqlite3')}"


def postgres_database_url(server_url: str, database: str) -> str:
    """POSTGRES_URL names a server; each service uses its own database on it, with the psycopg 3 driver."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=database).render_as_string(hide_password=False)


@dataclass(frozen=True)
class ServiceSettings:
    """What every service process reads at start-up."""

    name: str
    database_url: str
    grpc_bind: str
    http_port: int
    kafka_bootstrap_servers: str | None
    redis_url: str | None
    topic_partitions: int
    log_level: str
    instance_id: str
    # Prefix of every Kafka topic and consumer group (several platforms on one cluster); empty by default.
    kafka_namespace: str = ""

    @classmethod
    def from_env(cls, name: str) -> ServiceSettings:
        address = service_address(name)
        port = address.rsplit(":", 1)[1]
        return cls(
            name=name,
            database_url=database_url(name),
            grpc_bind=env(f"WEIKA_{name.upper()}_GRPC_BIND", f"0.0.0.0:{port}") or "",
            http_port=env_int(f"WEIKA_{name.upper()}_HTTP_PORT", DEFAULT_HTTP_PORTS.get(name, 9100)),
            kafka_bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS"),
            kafka_namespace=env("WEIKA_KAFKA_NAMESPACE", "") or "",
            redis_url=env("REDIS_URL"),
            topic_partitions=env_int("WEIKA_TOPIC_PARTITIONS", 3),
            log_level=env("WEIKA_LOG_LEVEL", "INFO") or "INFO",
            # In a container the pid is always 1: the host name (the pod name) keeps replicas apart.
            instance_id=env("WEIKA_INSTANCE_ID", f"{name}-{socket.gethostname()}-{os.getpid()}") or name,
        )
