"""`make bench`: Weika's benchmarks, each printed as a table with the figure that matters as a ratio to a
baseline measured in the same run (machines here are shared and noisy; absolute numbers drift).

redemption: a few thousand issued coupon codes redeemed by concurrent clients through the gateway (REST →
gRPC → PostgreSQL, outbox → Kafka), beside the same database transaction (conditional update + outbox insert)
run directly against the same PostgreSQL; and the redemption service alone over gRPC with one and with two
processes (bench/redemption_scaling.py).
import: 5,000 catalog rows imported from the .xlsx template (bench/catalog_import.py), beside openpyxl alone
reading the same workbook.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.platform import SERVICES, Api, Platform, eventually  # noqa: E402
from tools import infra  # noqa: E402


@dataclass
class Result:
    name: str
    operations: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


def run_concurrently(items: list, clients: int, work: Callable[[int, object], bool]) -> tuple[float, list[float], int]:
    """Each client thread takes the next item and times `work` on it; returns wall time, latencies, errors."""
    cursor = iter(enumerate(items))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    barrier = threading.Barrier(clients + 1)

    def client(worker: int) -> None:
        barrier.wait()
        while True:
            with lock:
                nxt = next(cursor, None)
            if nxt is None:
                return
            started = time.perf_counter()
            ok = work(worker, nxt[1])
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, errors[0]


def issue_codes(platform: Platform, count: int) -> tuple[Api, str, list[str]]:
    import requests

    merchant = requests.post(platform.url + "/v1/merchants", json={"name": "Bench Tea"},
                             headers={"Authorization": f"Bearer {platform.admin_token}"}, timeout=30).json()
    api = Api(platform.url, merchant["api_keys"]["test"])
    store = api.post("/v1/stores", json={"name": "Bench", "code": "B-1"}).json()
    category = api.post("/v1/categories", json={"name": "bench"}).json()
    product = api.post("/v1/products", json={
        "kind": "coupon", "name": "bench voucher", "category_id": category["id"], "price": 100,
        "stock": {"mode": "unlimited"},
        "coupon": {"face_value": 100, "threshold": 0, "store_ids": [], "redeem_methods": ["code"],
                   "validity": {"mode": "relative", "days": 30}}}).json()
    order_ids = []
    remaining = count
    while remaining:
        quantity = min(remaining, 500)
        order = api.post("/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "customer": {"external_id": "bench"}, "items": [{"product_id": product["id"], "quantity": quantity}]}).json()
        api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"})
        order_ids.append((order["id"], quantity))
        remaining -= quantity
    codes: list[str] = []
    for order_id, quantity in order_ids:
        def all_issued(o: str = order_id, q: int = quantity) -> list | None:
            data = api.get("/v1/coupons", params={"order_id": o, "limit": q}).json()["data"]
            return data if len(data) >= q else None

        codes.extend(c["code"] for c in eventually(all_issued, timeout=300, interval=1))
    return api, store["id"], codes


def bench_gateway(platform: Platform, count: int, clients: int) -> Result:
    import requests

    api, store_id, codes = issue_codes(platform, count)
    sessions = [requests.Session() for _ in range(clients)]
    for s in sessions:
        s.headers.update(api.session.headers)

    def redeem(worker: int, code: object) -> bool:
        resp = sessions[worker].post(platform.url + "/v1/redemptions", json={"code": code, "store_id": store_id},
                                     timeout=30)
        return resp.status_code == 201

    seconds, latencies, errors = run_concurrently(codes, clients, redeem)
    return Result("gateway → redemption (REST, gRPC, PostgreSQL, outbox)", len(codes), seconds, latencies, errors)


def bench_direct_sql(server_url: str, count: int, clients: int) -> Result:
    """The redemption's own database work, and nothing else: conditional update + outbox insert, one commit."""
    import psycopg
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert, update

    from weika_kit.db import KIT_METADATA, KIT_TABLES, Database, UTCDateTime

    name = f"bench_direct_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    db = Database(url, service="bench", pool_size=clients)
    metadata = MetaData()
    coupons = Table("coupons", metadata, Column("id", Integer, primary_key=True),
                    Column("status", String(16), nullable=False), Column("redeemed_at", UTCDateTime()))
    try:
        KIT_METADATA.create_all(db.engine)
        metadata.create_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(insert(coupons), [{"id": i, "status": "issued"} for i in range(count)])
        outbox = KIT_TABLES["outbox"]

        def redeem(_worker: int, coupon_id: object) -> bool:
            with db.engine.begin() as conn:
                now = datetime.now(UTC)
                done = conn.execute(update(coupons).where(coupons.c.id == coupon_id, coupons.c.status == "issued")
                                    .values(status="redeemed", redeemed_at=now)).rowcount
                conn.execute(insert(outbox).values(event_id=str(uuid.uuid4()), topic="bench", key=str(coupon_id),
                                                   payload=b"x" * 200, headers="{}", created_at=now))
            return done == 1

        seconds, latencies, errors = run_concurrently(list(range(count)), clients, redeem)
        return Result("baseline: the same transaction, direct SQL", count, seconds, latencies, errors)
    finally:
        db.dispose()
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[Result], baseline: Result) -> None:
    header = f"{'benchmark':<56} {'ops':>6} {'ops/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs baseline':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = r.per_second / baseline.per_second if baseline.per_second else 0
        print(f"{r.name:<56} {r.operations:>6} {r.per_second:>9.1f} {r.percentile(50):>8.1f} {r.percentile(95):>8.1f} "
              f"{r.percentile(99):>8.1f} {r.errors:>6} {ratio:>10.2f}x")


def print_import_table() -> None:
    from bench.catalog_import import bench

    rows = bench()
    baseline = rows[0]
    header = f"{'benchmark':<56} {'rows':>6} {'seconds':>8} {'rows/s':>9} {'time vs baseline':>17}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['name']:<56} {row['ops']:>6} {row['seconds']:>8.2f} {row['ops'] / row['seconds']:>9.0f} "
              f"{row['seconds'] / baseline['seconds']:>16.2f}x")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=int, default=2000, help="coupon codes issued and redeemed (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--only", choices=["redemption", "import"], help="run one benchmark only")
    args = parser.parse_args()
    if args.only != "redemption":
        print_import_table()
        if args.only == "import":
            return 0

    servers = infra.ensure_all()
    server_url = servers["POSTGRES_URL"]
    base = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    run_id = uuid.uuid4().hex[:8]
    databases = {name: f"bench_{name}_{run_id}" for name in (*SERVICES, "gateway")}
    extra = {"KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"], "REDIS_URL": servers["REDIS_URL"]}
    extra.update({f"WEIKA_{n.upper()}_DATABASE_URL": f"{base}/{db}" for n, db in databases.items()})
    results_dir = ROOT / "bench" / "results"
    platform = Platform(results_dir / f"platform-{run_id}", extra_env=extra)
    print(f"starting the platform on Kafka + PostgreSQL + Redis ({args.codes} codes, {args.clients} clients)...",
          file=sys.stderr, flush=True)
    platform.start(timeout=180)
    try:
        gateway = bench_gateway(platform, args.codes, args.clients)
    finally:
        platform.stop()
        import psycopg

        with psycopg.connect(server_url, autocommit=True) as conn:
            for db in databases.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    baseline = bench_direct_sql(server_url, args.codes, args.clients)
    # The redemption service alone over gRPC, one process and then two, on a fresh database each.
    from bench.redemption_scaling import bench as redemption_scaling

    scaling = [Result(r["name"], r["ops"], r["seconds"], r["latencies_ms"], r["errors"])
               for r in redemption_scaling(server_url, args.codes, args.clients)[:2]]

    print()
    print_table([gateway, *scaling, baseline], baseline)
    print(f"\nredemption throughput through the gateway = {gateway.per_second / baseline.per_second:.2f} "
          f"of the direct-SQL baseline (same PostgreSQL, same run, {args.clients} clients)")
    results_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "at": datetime.now(UTC).isoformat(), "codes": args.codes, "clients": args.clients,
        "results": [{"name": r.name, "ops": r.operations, "ops_per_s": round(r.per_second, 1),
                     "p50_ms": round(r.percentile(50), 2), "p95_ms": round(r.percentile(95), 2),
                     "p99_ms": round(r.percentile(99), 2), "errors": r.errors,
                     "mean_ms": round(statistics.fmean(r.latencies_ms), 2) if r.latencies_ms else 0}
                    for r in (gateway, *scaling, baseline)],
    }
    (results_dir / f"redemption-{run_id}.json").write_text(json.dumps(record, indent=2))
    return 0 if not any(r.errors for r in (gateway, *scaling, baseline)) else 1


if __name__ == "__main__":
    sys.exit(main())
