"""Session fixtures handing every test suite real PostgreSQL, Redis and Kafka servers: env URLs, Docker, or tools/infra.py."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    # `tools.infra` must import whatever rootdir/import mode pytest was started with
    sys.path.insert(0, str(ROOT))

# server name -> where it came from, repeated in the terminal summary so CI logs show what really ran
_SOURCES: dict[str, str] = {}


def _announce(config: pytest.Config, server: str, source: str) -> None:
    _SOURCES[server] = source
    line = f"{server}: {source}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:  # e.g. an xdist worker: its stderr reaches the controller's log
        print(line, file=sys.__stderr__, flush=True)
        return
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        writer = getattr(reporter, "_tw", None)
        if writer is not None and writer.width_of_current_line:
            writer.line()  # not glued to the progress dots
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SOURCES:
        terminalreporter.section("weika test infrastructure")
        for server, source in _SOURCES.items():
            terminalreporter.write_line(f"{server}: {source}")


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@cache
def _docker_available() -> bool:
    """True when a Docker engine answers (a bare `docker` CLI without an engine does not count)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _plain_postgres_url(url: str) -> str:
    """`postgresql://` whatever the scheme given (postgres://, postgresql+psycopg://, ...)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise pytest.UsageError(f"POSTGRES_URL must be a postgresql:// URL, got {_masked(url)}")
    return urlunsplit(parts._replace(scheme="postgresql"))


@pytest.fixture(scope="session")
def postgres_server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """A `postgresql://` URL of a real PostgreSQL server; use `fresh_postgres_database` for a database of your own."""
    if os.environ.get("POSTGRES_URL"):
        url = _plain_postgres_url(os.environ["POSTGRES_URL"])
        _announce(pytestconfig, "postgres", f"{_masked(url)} (from $POSTGRES_URL)")
        yield url
    elif _docker_available():
        from testcontainers.community.postgres import PostgresContainer

        # same connection headroom as the local server
        with PostgresContainer("postgres:16-alpine", driver=None).with_command(
            "postgres -c max_connections=300"
        ) as container:
            url = container.get_connection_url()
            _announce(pytestconfig, "postgres", f"testcontainers postgres:16-alpine {_masked(url)}")
            yield url
    else:
        from tools import infra

        url = infra.ensure_postgres()
        outcome = infra.last_outcome.get("postgres", "")
        _announce(pytestconfig, "postgres", f"local server {_masked(url)} (tools/infra.py: {outcome})")
        yield url


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """A `redis://` URL of a real Redis server (shared: use unique key prefixes)."""
    if os.environ.get("REDIS_URL"):
        url = os.environ["REDIS_URL"]
        _announce(pytestconfig, "redis", f"{_masked(url)} (from $REDIS_URL)")
        yield url
    elif _docker_available():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            _announce(pytestconfig, "redis", f"testcontainers redis:7-alpine {url}")
            yield url
    else:
        from tools import infra

        url = infra.ensure_redis()
        outcome = infra.last_outcome.get("redis", "")
        _announce(pytestconfig, "redis", f"local server {url} (tools/infra.py: {outcome})")
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker (shared: use unique topic and group names)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        _announce(pytestconfig, "kafka", f"{bootstrap} (from $KAFKA_BOOTSTRAP_SERVERS)")
        yield bootstrap
    elif _docker_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            bootstrap = container.get_bootstrap_server()
            _announce(pytestconfig, "kafka", f"testcontainers {container.image} (KRaft) {bootstrap}")
            yield bootstrap
    else:
        from tools import infra

        bootstrap = infra.ensure_kafka()
        outcome = infra.last_outcome.get("kafka", "")
        _announce(pytestconfig, "kafka", f"local broker {bootstrap} (tools/infra.py: {outcome})")
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The directory of the Kafka broker jars, for tests that run a dedicated `tools.infra.KafkaBroker`."""
    from tools import infra

    return infra.fetch_kafka_jars()


def _database_url(server_url: str, database: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{database}"))


@pytest.fixture
def fresh_postgres_database(postgres_server_url: str) -> Iterator[Callable[[str], str]]:
    """Factory `make(name_prefix) -> postgresql+psycopg:// URL` of a new, empty database, dropped after the test."""
    import psycopg
    from psycopg import sql

    created: list[str] = []

    def make(name_prefix: str = "test") -> str:
        prefix = re.sub(r"[^a-z0-9_]+", "_", name_prefix.lower()).strip("_")[:40] or "test"
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        # CREATE DATABASE cannot run inside a transaction
        with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _database_url(postgres_server_url, name)

    yield make

    if created:
        with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=10) as conn:
            for name in reversed(created):
                # FORCE: a service under test may still hold pooled connections to it
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
