"""Redemption throughput with ONE and with TWO redemption-service processes, over gRPC (no gateway), each against
a fresh PostgreSQL database, beside the direct-SQL baseline of bench/run.py.

Also the process launcher the two-process test uses (tests/test_redemption_two_processes.py): real
`python -m weika_redemption` processes sharing one database and one WEIKA_SECRET_KEY.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
MERCHANT = "mch_bench"
MODE = "test"
STORE = "sto_bench"
# Environment the processes must not inherit: Kafka (they use their own embedded log), a server-wide
# PostgreSQL URL (their database is WEIKA_REDEMPTION_DATABASE_URL) and another run's addresses.
_NOT_INHERITED = ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_URL", "REDIS_URL", "WEIKA_REDEMPTION_GRPC_ADDR",
                  "WEIKA_REDEMPTION_GRPC_BIND", "WEIKA_REDEMPTION_HTTP_PORT", "WEIKA_INSTANCE_ID")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def redemption_processes(database_url: str, count: int, *, secret_key: str, var_dir: Path,
                         timeout_s: float = 60) -> Iterator[list[str]]:
    """Start `count` redemption-service processes on one (already migrated) database; yields their gRPC targets."""
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    targets: list[str] = []
    try:
        for i in range(count):
            grpc_port, http_port = free_port(), free_port()
            own_var = var_dir / f"redemption-{i}"
            own_var.mkdir(parents=True, exist_ok=True)
            env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
            env.update({
                "WEIKA_REDEMPTION_DATABASE_URL": database_url, "WEIKA_SECRET_KEY": secret_key,
                "WEIKA_REDEMPTION_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
                "WEIKA_REDEMPTION_GRPC_BIND": f"127.0.0.1:{grpc_port}",
                "WEIKA_REDEMPTION_HTTP_PORT": str(http_port), "WEIKA_VAR_DIR": str(own_var),
                "WEIKA_INSTANCE_ID": f"redemption-bench-{i}", "WEIKA_LOG_LEVEL": "WARNING"})
            log = open(own_var / "process.log", "wb")  # noqa: SIM115 - closed with the process below
            proc = subprocess.Popen([str(PYTHON), "-m", "weika_redemption"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(ROOT))
            log.close()
            procs.append((proc, http_port))
            targets.append(f"127.0.0.1:{grpc_port}")
        deadline = time.monotonic() + timeout_s
        for proc, http_port in procs:
            while not _ready(http_port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redemption process on :{http_port} did not become ready; "
                                       f"see {var_dir}/redemption-*/process.log")
                time.sleep(0.2)
        yield targets
    finally:
        from weika_kit import grpc_client

        for target in targets:
            grpc_client.forget(target)
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def issue_codes(database_url: str, count: int, *, max_uses: int = 1) -> list[str]:
    """Migrate the database and issue `count` coupons straight through the service's own use case; their codes.

    Encrypts with this process's WEIKA_SECRET_KEY: the service processes must be given the same key.
    """
    from weika_kit import context
    from weika_kit.db import Database
    from weika_kit.migrations import upgrade
    from weika_redemption.bootstrap import MIGRATIONS
    from weika_redemption.domain.model import CouponTerms
    from weika_redemption.service_layer import services

    upgrade(database_url, MIGRATIONS)
    caller = context.Caller(MERCHANT, MODE, role="system")
    db = Database(database_url, service="redemption")
    terms = CouponTerms(face_value=100, threshold=0, store_ids=(), redeem_methods=("code", "qr"),
                        validity_mode="relative", validity_days=30, max_uses=max_uses)
    order_ids = []
    try:
        with context.bound(caller=caller):
            remaining = count
            while remaining:
                quantity = min(remaining, 500)
                order_id = f"ord_bench_{uuid.uuid4().hex[:10]}"
                order = services.PaidOrder(order_id, MERCHANT, MODE, "cus_bench",
                                           [services.PaidCouponLine("prd_bench", "cat_bench", quantity, terms)])
                with db.unit_of_work() as uow:
                    services.issue_coupons(uow, caller, order, datetime.now(UTC))
                    uow.commit()
                order_ids.append(order_id)
                remaining -= quantity
        codes: list[str] = []
        for order_id in order_ids:
            token = ""
            while True:
                page = services.list_coupons(db, caller, order_id, services.MAX_PAGE_SIZE, token)
                codes.extend(item.code for item in page.coupons)
                token = page.next_page_token
                if not token:
                    break
        return codes
    finally:
        db.dispose()


def redeem_over_grpc(target: str, code: str, *, staff_id: str = "stf_bench", store_id: str = STORE):
    """One RedeemCoupon call to one process; returns the Redemption or raises RemoteError."""
    from weika.redemption.v1 import redemption_pb2, redemption_pb2_grpc
    from weika_kit import context, grpc_client

    stub = grpc_client.stub(redemption_pb2_grpc.RedemptionServiceStub, target)
    with context.bound(caller=context.Caller(MERCHANT, MODE, staff_id=staff_id, role="clerk"),
                       request_id=context.new_request_id()):
        return grpc_client.call(stub.RedeemCoupon, redemption_pb2.RedeemCouponRequest(code=code, store_id=store_id),
                                timeout_s=60)


def _fresh_database(server_url: str, prefix: str) -> tuple[str, str]:
    import psycopg

    from weika_kit.config import postgres_database_url

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, postgres_database_url(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one_run(server_url: str, processes: int, codes: int, clients: int, secret_key: str) -> dict:
    from bench.run import run_concurrently
    from weika_kit import crypto

    name, url = _fresh_database(server_url, f"bench_redemption_{processes}p")
    try:
        issued = issue_codes(url, codes)
        with tempfile.TemporaryDirectory(prefix="weika-bench-redemption-") as var_dir, \
                redemption_processes(url, processes, secret_key=secret_key, var_dir=Path(var_dir)) as targets:
            for target in targets:  # open each channel before timing
                # coupon_not_found is expected: only the open connection matters
                with contextlib.suppress(Exception):
                    redeem_over_grpc(target, "0000-0000-0000-0000-0")

            def redeem(worker: int, code: object) -> bool:
                # clients are spread round-robin over the processes, as a load balancer would
                try:
                    redeem_over_grpc(targets[worker % len(targets)], str(code))
                    return True
                except Exception:  # noqa: BLE001 - counted as an error
                    return False

            seconds, latencies, errors = run_concurrently(issued, clients, redeem)
    finally:
        _drop_database(server_url, name)
        crypto._key.cache_clear()
    return {"name": f"redemption service x{processes} (gRPC, PostgreSQL, outbox)", "ops": len(issued),
            "seconds": seconds, "latencies_ms": latencies, "errors": errors}


def bench(server_url: str, codes: int, clients: int) -> list[dict]:
    """Rows (name, ops, seconds, latencies_ms, errors): one process, two processes, then the direct-SQL baseline."""
    from cryptography.fernet import Fernet

    from bench.run import bench_direct_sql
    from weika_kit import crypto

    secret_key = Fernet.generate_key().decode()
    previous = os.environ.get("WEIKA_SECRET_KEY")
    os.environ["WEIKA_SECRET_KEY"] = secret_key  # issue_codes encrypts with the key the processes get
    crypto._key.cache_clear()
    try:
        rows = [_one_run(server_url, processes, codes, clients, secret_key) for processes in (1, 2)]
    finally:
        if previous is None:
            os.environ.pop("WEIKA_SECRET_KEY", None)
        else:
            os.environ["WEIKA_SECRET_KEY"] = previous
        crypto._key.cache_clear()
    baseline = bench_direct_sql(server_url, codes, clients)
    rows.append({"name": baseline.name, "ops": baseline.operations, "seconds": baseline.seconds,
                 "latencies_ms": baseline.latencies_ms, "errors": baseline.errors})
    return rows


def main() -> int:
    """`python bench/redemption_scaling.py [codes] [clients]`: prints the table (PostgreSQL from tools/infra)."""
    sys.path.insert(0, str(ROOT))
    from bench.run import Result, print_table
    from tools import infra

    codes = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    rows = bench(infra.ensure_postgres(), codes, clients)
    results = [Result(r["name"], r["ops"], r["seconds"], r["latencies_ms"], r["errors"]) for r in rows]
    print_table(results, results[-1])
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
