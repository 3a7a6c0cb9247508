"""Provision real PostgreSQL, Redis and Kafka servers on loopback without Docker: `python tools/infra.py up|down|status|env`."""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
HOST = "127.0.0.1"
PG_USER = "weika"
PG_PASSWORD = "weika"
# Debian package names; the system postgres user comes with `postgresql`.
PKG_POSTGRES = "postgresql"
PKG_REDIS = "redis-server"
PKG_JAVA = "openjdk-17-jre-headless"
PKG_MAVEN = "maven"


class InfraError(RuntimeError):
    """A server could not be installed, started or stopped."""


# what the last ensure_* call of this process did per server ("reused" / "started in 3.9 s"), for reports
last_outcome: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------------------------
# configuration (read at call time so tests and callers can set the environment first)


def infra_dir() -> Path:
    return Path(os.environ.get("WEIKA_INFRA_DIR", "/tmp/weika-infra")).expanduser().resolve()


def kafka_jars_dir() -> Path:
    default = Path.home() / ".cache" / "weika" / f"kafka-{KAFKA_VERSION}" / "libs"
    return Path(os.environ.get("WEIKA_KAFKA_JARS_DIR", default)).expanduser().resolve()


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise InfraError(f"{var}={raw!r} is not a port number") from exc


def pg_port() -> int:
    return _port("WEIKA_INFRA_PG_PORT", 55432)


def redis_port() -> int:
    return _port("WEIKA_INFRA_REDIS_PORT", 56379)


def kafka_port() -> int:
    return _port("WEIKA_INFRA_KAFKA_PORT", 59092)


def kafka_controller_port() -> int:
    return _port("WEIKA_INFRA_KAFKA_CONTROLLER_PORT", kafka_port() + 1)


def postgres_url(port: int | None = None) -> str:
    return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{port or pg_port()}/postgres"


def redis_url(port: int | None = None) -> str:
    return f"redis://{HOST}:{port or redis_port()}/0"


def kafka_bootstrap(port: int | None = None) -> str:
    return f"{HOST}:{port or kafka_port()}"


def env_vars() -> dict[str, str]:
    return {
        "POSTGRES_URL": postgres_url(),
        "REDIS_URL": redis_url(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(),
    }


# ---------------------------------------------------------------------------------------------------------------
# small helpers


def log(message: str) -> None:
    # stderr, so that stdout of `up`/`env` stays eval-able
    print(f"[infra] {message}", file=sys.stderr, flush=True)


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float | None = 120,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with its output captured to a file (a pipe could be inherited by a daemon and hang us)."""
    argv = [str(c) for c in cmd]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cwd, env=env, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"{' '.join(argv)} timed out after {timeout} s") from exc
        except FileNotFoundError as exc:
            raise InfraError(f"{argv[0]} not found") from exc
        out.seek(0)
        text = out.read()
    if check and proc.returncode != 0:
        raise InfraError(f"{' '.join(argv)} exited with {proc.returncode}:\n{text[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, text, "")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _tcp_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    # A dead child that nobody reaped yet (zombie) still "exists" for kill(pid, 0): read its state instead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_pid_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError, OSError):
            # reap it if it happens to be our child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    return not _pid_alive(pid)


def _is_root() -> bool:
    return os.geteuid() == 0


_lock_depth = 0


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _infra_lock() -> Iterator[None]:
    """Serialise provisioning across processes (parallel test runs, `up` while tests run); re-entrant."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    root = _prepare_infra_dir()
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _lock_depth = 1
    try:
        yield
    finally:
        _lock_depth = 0
        os.close(fd)


def _prepare_infra_dir() -> Path:
    root = infra_dir()
    root.mkdir(parents=True, exist_ok=True)
    if _is_root():
        # the postgres user must reach its data dir through here
        root.chmod(0o755)
    return root


# ---------------------------------------------------------------------------------------------------------------
# Debian packages

_apt_updated = False


def _apt_install(packages: Sequence[str]) -> None:
    """Install missing Debian packages unattended; `apt-get update` runs at most once per process."""
    global _apt_updated
    packages = sorted(set(packages))
    if not packages:
        return
    if shutil.which("apt-get") is None:
        raise InfraError(f"missing {', '.join(packages)} and no apt-get to install them")
    prefix: list[str] = []
    if not _is_root():
        if shutil.which("sudo") is None:
            raise InfraError(f"missing {', '.join(packages)}: run `sudo apt-get install -y {' '.join(packages)}`")
        prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    if not _apt_updated:
        log("apt-get update")
        _run([*prefix, "apt-get", "update", "-q"], env=env, timeout=600)
        _apt_updated = True
    log(f"apt-get install {' '.join(packages)}")
    _run(
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends",
         "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", *packages],
        env=env, timeout=1200,
    )
    log(f"installed {' '.join(packages)} in {time.monotonic() - started:.1f} s")


def _pg_bindir() -> Path | None:
    # Debian keeps the server binaries (initdb, pg_ctl, postgres) off PATH, one dir per major version.
    versions = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            with contextlib.suppress(ValueError):
                versions.append((int(candidate.parent.name), candidate))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None
    )


def _java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def _missing_packages(*, postgres: bool = False, redis: bool = False, kafka: bool = False) -> list[str]:
    missing = []
    if postgres and _pg_bindir() is None:
        missing.append(PKG_POSTGRES)
    if redis and _redis_server() is None:
        missing.append(PKG_REDIS)
    if kafka:
        if _java() is None:
            missing.append(PKG_JAVA)
        if not _jars_complete(kafka_jars_dir()) and shutil.which("mvn") is None:
            missing.append(PKG_MAVEN)
    return missing


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_dirs() -> tuple[Path, Path, Path]:
    base = infra_dir() / "postgres"
    return base, base / "data", base / "run"


def _pg_owner() -> pwd.struct_passwd:
    if not _is_root():
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise InfraError("PostgreSQL refuses to run as root and there is no `postgres` user") from exc


def _as_pg_owner(cmd: Sequence[str | os.PathLike[str]]) -> list[str]:
    argv = [str(c) for c in cmd]
    return ["runuser", "-u", "postgres", "--", *argv] if _is_root() else argv


def _chown_pg(*paths: Path) -> None:
    if _is_root():
        owner = _pg_owner()
        for path in paths:
            os.chown(path, owner.pw_uid, owner.pw_gid)


def _pg_ready(port: int) -> bool:
    bindir = _pg_bindir()
    pg_isready = str(bindir / "pg_isready") if bindir and (bindir / "pg_isready").exists() else shutil.which("pg_isready")
    if pg_isready:
        return _run([pg_isready, "-q", "-h", HOST, "-p", str(port), "-t", "3"], check=False, timeout=10).returncode == 0
    # No client tools: an SSLRequest is answered with a single b"S"/b"N" by PostgreSQL and nothing else.
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(struct.pack(">ii", 8, 80877103))
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def _pg_running_pid() -> int | None:
    _, data, _ = _pg_dirs()
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    # after a reboot the stale pid may belong to an unrelated process
    return pid if _pid_alive(pid) and "postgres" in _cmdline(pid) else None


def _ensure_postgres() -> str:
    port = pg_port()
    url = postgres_url(port)
    if _pg_ready(port):
        log(f"postgres: reusing server on {HOST}:{port}")
        last_outcome["postgres"] = "reused"
        return url
    _apt_install(_missing_packages(postgres=True))
    bindir = _pg_bindir()
    if bindir is None:
        raise InfraError("PostgreSQL server binaries (initdb, pg_ctl) not found after install")
    _prepare_infra_dir()
    base, data, run_dir = _pg_dirs()
    for path in (base, run_dir):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        _chown_pg(path)
    if _is_root():
        # Fail with a clear message rather than an initdb permission error (e.g. WEIKA_INFRA_DIR under /root).
        probe = _run(_as_pg_owner(["test", "-w", base]), check=False, cwd=base)
        if probe.returncode != 0:
            raise InfraError(f"the postgres user cannot write {base}: put WEIKA_INFRA_DIR somewhere it can reach")
    started = time.monotonic()
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-done initdb of our own: start over
        pwfile = base / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        pwfile.chmod(0o600)
        _chown_pg(pwfile)
        try:
            _run(
                _as_pg_owner([
                    bindir / "initdb", "-D", data, "-U", PG_USER, f"--pwfile={pwfile}",
                    "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                ]),
                cwd=base, timeout=300,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# Weika local infra settings (regenerated by tools/infra.py on every start)\n")
            conf.write("include_if_exists = 'weika.conf'\n")
        log(f"postgres: initdb {data} in {time.monotonic() - started:.1f} s")
    # Rewritten on every start so a changed WEIKA_INFRA_PG_PORT applies to an existing cluster.
    weika_conf = data / "weika.conf"
    weika_conf.write_text(
        f"listen_addresses = '{HOST}'\n"
        f"port = {port}\n"
        "max_connections = 300\n"
        f"unix_socket_directories = '{run_dir}'\n"
        "logging_collector = off\n"
    )
    _chown_pg(weika_conf)
    t0 = time.monotonic()
    pg_ctl_output = ""
    if _pg_running_pid() is None:
        pg_ctl_output = _run(
            _as_pg_owner([bindir / "pg_ctl", "-D", data, "-l", base / "postgres.log", "-w", "-t", "120", "start"]),
            check=False, cwd=base, timeout=180,
        ).stdout
    # else: our postmaster is alive but not accepting connections yet (crash recovery, another `up` starting it)
    deadline = time.monotonic() + 120
    while not _pg_ready(port) and time.monotonic() < deadline and _pg_running_pid() is not None:
        time.sleep(0.2)
    if not _pg_ready(port):
        raise InfraError(f"PostgreSQL did not start on {HOST}:{port}:\n{pg_ctl_output}{_tail(base / 'postgres.log')}")
    seconds = time.monotonic() - t0
    log(f"postgres: started {bindir.parent.name} on {HOST}:{port} in {seconds:.1f} s (data {data})")
    last_outcome["postgres"] = f"started in {seconds:.1f} s"
    return url


def _stop_postgres() -> None:
    base, data, _ = _pg_dirs()
    bindir = _pg_bindir()
    if bindir is None or _pg_running_pid() is None:
        log("postgres: not running")
        return
    t0 = time.monotonic()
    _run(_as_pg_owner([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"]), cwd=base, timeout=90)
    log(f"postgres: stopped in {time.monotonic() - t0:.1f} s")


def ensure_postgres() -> str:
    """Return a `postgresql://` URL of a running server (user weika/weika, database postgres), starting one if needed."""
    with _infra_lock():
        return _ensure_postgres()


# ---------------------------------------------------------------------------------------------------------------
# Redis


def _redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload)
        try:
            return sock.recv(4096)
        except ConnectionResetError:
            return b""  # SHUTDOWN closes the connection without a reply


def _redis_ping(port: int) -> bool:
    try:
        return _redis_command(port, "PING").startswith(b"+PONG")
    except OSError:
        return False


def _redis_paths() -> tuple[Path, Path, Path]:
    base = infra_dir() / "redis"
    return base, base / "redis.conf", base / "redis.pid"


def _ensure_redis() -> str:
    port = redis_port()
    url = redis_url(port)
    if _redis_ping(port):
        log(f"redis: reusing server on {HOST}:{port}")
        last_outcome["redis"] = "reused"
        return url
    _apt_install(_missing_packages(redis=True))
    server = _redis_server()
    if server is None:
        raise InfraError("redis-server not found after install")
    _prepare_infra_dir()
    base, conf, pid_file = _redis_paths()
    base.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        f"bind {HOST}\n"
        f"port {port}\n"
        "protected-mode yes\n"
        "daemonize yes\n"
        f"pidfile {pid_file}\n"
        f"logfile {base / 'redis.log'}\n"
        f"dir {base}\n"
        # a test cache: no RDB snapshots, no AOF
        'save ""\n'
        "appendonly no\n"
    )
    t0 = time.monotonic()
    _run([server, conf], cwd=base, timeout=30)
    deadline = time.monotonic() + 15
    # --daemonize returns before the child listens
    while not _redis_ping(port):
        if time.monotonic() > deadline:
            raise InfraError(f"redis-server did not answer PING on {HOST}:{port}:\n{_tail(base / 'redis.log')}")
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    log(f"redis: started on {HOST}:{port} in {seconds:.1f} s")
    last_outcome["redis"] = f"started in {seconds:.1f} s"
    return url


def _redis_conf_port(conf: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in conf.read_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
    return None


def _stop_redis() -> None:
    _, conf, pid_file = _redis_paths()
    pid = _read_pid(pid_file)
    if pid is None or not _pid_alive(pid) or "redis-server" not in _cmdline(pid):
        log("redis: not running")
        pid_file.unlink(missing_ok=True)
        return
    port = _redis_conf_port(conf) or redis_port()
    with contextlib.suppress(OSError):
        _redis_command(port, "SHUTDOWN", "NOSAVE")
    if not _wait_pid_exit(pid, 10):
        os.kill(pid, signal.SIGKILL)
        _wait_pid_exit(pid, 5)
    pid_file.unlink(missing_ok=True)
    log("redis: stopped")


def ensure_redis() -> str:
    """Return a `redis://` URL of a running server, starting one if needed."""
    with _infra_lock():
        return _ensure_redis()


# ---------------------------------------------------------------------------------------------------------------
# Kafka


def _jars_complete(libs: Path) -> bool:
    return (libs / ".complete").exists()


def fetch_kafka_jars() -> Path:
    """Return the directory of the broker's jars, fetching them from Maven Central (via mvn) when missing."""
    libs = kafka_jars_dir()
    if _jars_complete(libs):
        return libs
    with _flock(libs.parent / ".fetch.lock"):
        if _jars_complete(libs):  # another process fetched them while we waited
            return libs
        _apt_install(_missing_packages(kafka=True))
        staging = libs.with_name(libs.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        log(f"kafka: fetching Kafka {KAFKA_VERSION} jars with mvn into {libs}")
        t0 = time.monotonic()
        _run(
            ["mvn", "-q", "-B", "-f", POM, "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
            cwd=POM.parent, timeout=1200,
        )
        if not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise InfraError(f"mvn finished but {staging} lacks kafka_2.13-{KAFKA_VERSION}.jar")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        jars = sorted(p.name for p in libs.glob("*.jar"))
        # written last: its presence means the copy is complete (a killed fetch is redone)
        (libs / ".complete").write_text("\n".join(jars) + "\n")
        log(f"kafka: fetched {len(jars)} jars in {time.monotonic() - t0:.1f} s")
    return libs


def _random_cluster_id() -> str:
    # Same format as `kafka-storage random-uuid` (org.apache.kafka.common.Uuid), without a JVM start.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _kafka_request(sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"weika-infra"
    message = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id + body
    sock.sendall(struct.pack(">i", len(message)) + message)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    response = _recv_exact(sock, size)
    if struct.unpack_from(">i", response)[0] != correlation_id:
        raise OSError("Kafka response correlation id mismatch")
    return response[4:]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed by broker")
        chunks += chunk
    return bytes(chunks)


def kafka_metadata_brokers(port: int, host: str = HOST, timeout: float = 2.0) -> list[tuple[int, str, int]] | None:
    """Ask a broker for cluster metadata with the raw protocol (stdlib only).

    Returns the (node id, host, port) of every registered broker, or None when the broker does not speak
    Metadata v4; raises OSError while nothing usable answers.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # ApiVersions v0 is answered by every broker version, so use it to check Metadata v4 is supported.
        body = _kafka_request(sock, 18, 0, 1, b"")
        error, count = struct.unpack_from(">hi", body)
        if error:
            raise OSError(f"ApiVersions error {error}")
        ranges = {key: (lo, hi) for key, lo, hi in (struct.unpack_from(">hhh", body, 6 + 6 * i) for i in range(count))}
        lo, hi = ranges.get(3, (99, -1))
        if not lo <= 4 <= hi:
            return None
        # Metadata v4: topics=null (all), allow_auto_topic_creation=false
        body = _kafka_request(sock, 3, 4, 2, struct.pack(">ib", -1, 0))
        offset = 4  # throttle_time_ms
        (count,) = struct.unpack_from(">i", body, offset)
        offset += 4
        brokers = []
        for _ in range(count):
            node_id, host_len = struct.unpack_from(">ih", body, offset)
            offset += 6
            broker_host = body[offset:offset + host_len].decode()
            offset += host_len
            broker_port, rack_len = struct.unpack_from(">ih", body, offset)
            offset += 6 + max(rack_len, 0)
            brokers.append((node_id, broker_host, broker_port))
        return brokers


def _kafka_answers(port: int) -> bool:
    try:
        brokers = kafka_metadata_brokers(port)
    except (OSError, struct.error):
        return False
    return brokers is None or bool(brokers)


LOG4J2_YAML = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


class KafkaBroker:
    """A single-node KRaft broker+controller running as a detached JVM, its files all under `data_dir`.

    Layout: data_dir/data (log.dirs, formatted once and kept across restarts), server.properties,
    log4j2.yaml, broker.log (stdout+stderr of the current run; the previous run's is broker.prev.log),
    kafka.pid.
    """

    def __init__(self, data_dir: Path, port: int, controller_port: int, *, heap_mb: int = 512) -> None:
        if port == controller_port:
            raise ValueError("port and controller_port must differ")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.log_dirs = self.data_dir / "data"
        self.properties = self.data_dir / "server.properties"
        self.log4j_config = self.data_dir / "log4j2.yaml"
        self.log_file = self.data_dir / "broker.log"
        self.pid_file = self.data_dir / "kafka.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched_at: float | None = None

    def __repr__(self) -> str:
        return f"KafkaBroker({str(self.data_dir)!r}, port={self.port}, controller_port={self.controller_port})"

    @property
    def bootstrap(self) -> str:
        return kafka_bootstrap(self.port)

    def pid(self) -> int | None:
        """The broker's pid when it is alive (from our Popen, else from the pid file)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc.pid
            self._proc = None
        pid = _read_pid(self.pid_file)
        # the pid file may be stale and its pid reused by an unrelated process
        if pid is not None and _pid_alive(pid) and str(self.properties) in _cmdline(pid):
            return pid
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def answers(self) -> bool:
        return _kafka_answers(self.port)

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dirs.mkdir(exist_ok=True)
        self.properties.write_text(
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@{HOST}:{self.controller_port}\n"
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}\n"
            "controller.listener.names=CONTROLLER\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={self.log_dirs}\n"
            "num.partitions=3\n"
            # one broker: internal topics cannot have more replicas than that
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            # tests join consumer groups constantly; the default 3 s delay would be paid on every first join
            "group.initial.rebalance.delay.ms=0\n"
        )
        self.log4j_config.write_text(LOG4J2_YAML)

    def _format_if_needed(self, java: str, jars: Path) -> None:
        # A formatted dir holds meta.properties (with the cluster id): never re-format it, restarts keep data.
        if (self.log_dirs / "meta.properties").exists():
            return
        if any(self.log_dirs.iterdir()):
            raise InfraError(f"{self.log_dirs} is not empty but has no meta.properties; remove it to re-format")
        cluster_id = _random_cluster_id()
        t0 = time.monotonic()
        _run(
            [java, "-Xmx256m", f"-Dlog4j2.configurationFile={self.log4j_config}", "-cp", f"{jars}/*",
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", self.properties],
            cwd=self.data_dir, timeout=120,
        )
        log(f"kafka: formatted {self.log_dirs} (cluster id {cluster_id}) in {time.monotonic() - t0:.1f} s")

    def launch(self) -> None:
        """Start the JVM detached without waiting for it to serve (see wait_ready)."""
        if self.running():
            return
        if _tcp_open(self.port) or _tcp_open(self.controller_port):
            raise InfraError(f"port {self.port} or {self.controller_port} is taken by a process that is not {self!r}")
        java = _java()
        if java is None:
            _apt_install([PKG_JAVA])
            java = _java()
        if java is None:
            raise InfraError("java not found")
        jars = fetch_kafka_jars()
        self._write_config()
        self._format_if_needed(java, jars)
        if self.log_file.exists():
            self.log_file.replace(self.data_dir / "broker.prev.log")
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                [java, "-Xms256m", f"-Xmx{self.heap_mb}m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j_config}",
                 "-cp", f"{jars}/*", "kafka.Kafka", str(self.properties)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.data_dir,
                # its own session: survives the caller (pytest, `up`) and its terminal's signals
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        self._launched_at = time.monotonic()

    def wait_ready(self, timeout: float = 60) -> float:
        """Block until the broker answers a metadata request listing itself; return seconds since launch."""
        started = self._launched_at or time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise InfraError(f"Kafka broker exited during startup:\n{_tail(self.log_file)}")
            try:
                brokers = kafka_metadata_brokers(self.port)
            except (OSError, struct.error):
                brokers = []
            if brokers is None:
                # Metadata v4 unsupported: fall back to the broker's own "started" log line
                if _tcp_open(self.port) and "Kafka Server started" in _tail(self.log_file, 200):
                    break
            elif brokers:
                break
            if time.monotonic() > deadline:
                raise InfraError(f"Kafka broker not ready after {timeout} s:\n{_tail(self.log_file)}")
            time.sleep(0.1)
        self._check_with_client(deadline)
        return time.monotonic() - started

    def _check_with_client(self, deadline: float) -> None:
        # The real client library the services use must also be able to list topics.
        try:
            from kafka import KafkaAdminClient  # type: ignore[import-untyped]
        except ImportError:
            return
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="weika-infra",
                                         request_timeout_ms=5000)
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except Exception as exc:  # any client error means "not ready yet"
                if time.monotonic() > deadline:
                    raise InfraError(f"Kafka broker answers but kafka-python cannot list topics: {exc!r}") from exc
                time.sleep(0.2)

    def start(self, timeout: float = 60) -> float:
        """Start (or adopt an already running) broker and wait until it serves; return seconds to ready."""
        if self.running():
            return self.wait_ready(timeout)
        self.launch()
        return self.wait_ready(timeout)

    def _signal_and_wait(self, sig: int, timeout: float) -> bool:
        pid = self.pid()
        if pid is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        return _wait_pid_exit(pid, timeout)

    def stop(self, timeout: float = 20) -> None:
        """Graceful shutdown (SIGTERM: controlled shutdown, clean logs); SIGKILL when it takes over `timeout` s."""
        if not self._signal_and_wait(signal.SIGTERM, timeout):
            log(f"kafka: broker on {self.bootstrap} ignored SIGTERM for {timeout} s, killing it")
            self._signal_and_wait(signal.SIGKILL, 10)
        self._forget()

    def kill(self) -> None:
        """Crash the broker (SIGKILL): the next start recovers its logs."""
        self._signal_and_wait(signal.SIGKILL, 10)
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        self.pid_file.unlink(missing_ok=True)


def _default_broker() -> KafkaBroker:
    return KafkaBroker(infra_dir() / "kafka", kafka_port(), kafka_controller_port())


def _begin_kafka() -> Callable[[], str]:
    """Launch the shared broker if needed and return a function that waits for it (lets `up` overlap work)."""
    broker = _default_broker()
    bootstrap = broker.bootstrap
    if broker.running():
        if broker.answers():
            log(f"kafka: reusing broker on {bootstrap} (pid {broker.pid()})")
            last_outcome["kafka"] = "reused"
            return lambda: bootstrap
        log(f"kafka: broker pid {broker.pid()} runs but does not answer yet, waiting for it")
    elif _tcp_open(broker.port):
        if broker.answers():
            log(f"kafka: reusing a broker on {bootstrap} that tools/infra.py did not start")
            last_outcome["kafka"] = "reused a foreign broker"
            return lambda: bootstrap
        raise InfraError(f"port {broker.port} is taken by something that is not a Kafka broker")
    else:
        _prepare_infra_dir()
        broker.launch()
        log(f"kafka: launched broker pid {broker.pid()} on {bootstrap}")

    def wait() -> str:
        seconds = broker.wait_ready(90)
        log(f"kafka: broker ready on {bootstrap} in {seconds:.1f} s")
        last_outcome["kafka"] = f"started in {seconds:.1f} s"
        return bootstrap

    return wait


def ensure_kafka() -> str:
    """Return the bootstrap servers of a running single-node broker, starting one if needed."""
    with _infra_lock():
        return _begin_kafka()()


def ensure_all() -> dict[str, str]:
    """Make sure all three servers run; return the env vars (POSTGRES_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS)."""
    with _infra_lock():
        # one apt transaction for everything that is missing
        needs_pg = not _pg_ready(pg_port())
        needs_redis = not _redis_ping(redis_port())
        _apt_install(_missing_packages(postgres=needs_pg, redis=needs_redis, kafka=True))
        # the JVM boots while PostgreSQL and Redis start
        wait_kafka = _begin_kafka()
        result = {"POSTGRES_URL": _ensure_postgres(), "REDIS_URL": _ensure_redis()}
        result["KAFKA_BOOTSTRAP_SERVERS"] = wait_kafka()
        return result


def down() -> None:
    """Stop the three servers this tool started; a no-op for those not running."""
    with _infra_lock():
        broker = _default_broker()
        if broker.running():
            t0 = time.monotonic()
            broker.stop(timeout=20)
            log(f"kafka: stopped in {time.monotonic() - t0:.1f} s")
        else:
            broker.pid_file.unlink(missing_ok=True)
            log("kafka: not running")
        _stop_redis()
        _stop_postgres()


def status() -> dict[str, str | None]:
    """Map each server to a description when it runs and answers, else None."""
    result: dict[str, str | None] = {}
    port = pg_port()
    pg_pid = _pg_running_pid()
    if _pg_ready(port):
        owner = f"pid {pg_pid}" if pg_pid else "not started by tools/infra.py"
        result["postgres"] = f"{postgres_url(port)} ({owner}, data {_pg_dirs()[1]})"
    else:
        result["postgres"] = None
    port = redis_port()
    if _redis_ping(port):
        pid = _read_pid(_redis_paths()[2])
        owner = f"pid {pid}" if pid and _pid_alive(pid) else "not started by tools/infra.py"
        result["redis"] = f"{redis_url(port)} ({owner})"
    else:
        result["redis"] = None
    broker = _default_broker()
    if broker.answers():
        pid = broker.pid()
        owner = f"pid {pid}" if pid else "not started by tools/infra.py"
        result["kafka"] = f"{broker.bootstrap} ({owner}, data {broker.log_dirs})"
    else:
        result["kafka"] = None
    return result


def _print_exports(values: dict[str, str]) -> None:
    for name, value in values.items():
        print(f"export {name}={value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"],
                        help="up: start what is not running, print `export` lines; down: stop; "
                             "status: what runs (exit 3 unless all do); env: print the `export` lines")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            t0 = time.monotonic()
            values = ensure_all()
            log(f"all up in {time.monotonic() - t0:.1f} s (state in {infra_dir()})")
            _print_exports(values)
        elif args.command == "down":
            down()
        elif args.command == "status":
            states = status()
            for name, detail in states.items():
                print(f"{name:<9}{'running' if detail else 'stopped':<9}{detail or ''}".rstrip())
            return 0 if all(states.values()) else 3
        else:
            _print_exports(env_vars())
    except InfraError as exc:
        print(f"[infra] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
