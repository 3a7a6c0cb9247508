"""`make run`: every Weika service as its own process on loopback, embedded defaults unless configured.

Honours KAFKA_BOOTSTRAP_SERVERS, POSTGRES_URL and REDIS_URL; unset means embedded (SQLite files and the
embedded event log under var/, a Redis stand-in). One Ctrl-C stops every process; data survives restarts.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The payment simulator plays WeChat Pay and Alipay (real signatures) so orders can be paid locally.
SERVICES = ["catalog", "orders", "redemption", "marketing", "analytics", "gateway", "paysim"]
RESTART_LIMIT = 5


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _admin_token(var: Path) -> str:
    token = os.environ.get("WEIKA_ADMIN_TOKEN")
    if token:
        return token
    path = var / "admin-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    env = dict(os.environ)
    var = Path(env.setdefault("WEIKA_VAR_DIR", str(ROOT / "var"))).resolve()
    var.mkdir(parents=True, exist_ok=True)
    env["WEIKA_VAR_DIR"] = str(var)
    env["WEIKA_ADMIN_TOKEN"] = _admin_token(var)
    env.setdefault("PYTHONUNBUFFERED", "1")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    restarts = dict.fromkeys(SERVICES, 0)

    if not env.get("REDIS_URL"):
        port = int(env.get("WEIKA_EMBEDDED_REDIS_PORT", "56380"))
        procs["redis-standin"] = subprocess.Popen(
            [sys.executable, "-m", "weika_kit.redis_standin", "--port", str(port)], env=env)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 15
        while not _port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)

    gateway_port = env.setdefault("WEIKA_GATEWAY_PORT", "8080")
    paysim_port = env.setdefault("WEIKA_PAYSIM_PORT", "8090")
    env.setdefault("WEIKA_PAYSIM_URL", f"http://127.0.0.1:{paysim_port}")
    env.setdefault("WEIKA_PAYMENT_NOTIFY_BASE_URL", f"http://127.0.0.1:{gateway_port}")

    def start(name: str) -> None:
        procs[name] = subprocess.Popen([sys.executable, "-m", f"weika_{name}"], env=env)

    for name in SERVICES:
        start(name)

    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    gateway = f"http://127.0.0.1:{gateway_port}"
    print(f"weika: starting {len(SERVICES)} services; data in {var}", file=sys.stderr, flush=True)
    announced = False
    started = time.monotonic()
    while not stopping:
        if not announced:
            try:
                with urllib.request.urlopen(gateway + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        announced = True
                        print(f"\nweika: ready in {time.monotonic() - started:.1f}s at {gateway}\n"
                              f"weika: operator token (WEIKA_ADMIN_TOKEN): {env['WEIKA_ADMIN_TOKEN']}\n"
                              "weika: press Ctrl-C to stop every process\n", file=sys.stderr, flush=True)
            except OSError:
                pass
        for name, proc in list(procs.items()):
            if proc.poll() is not None and not stopping:
                if name not in restarts or restarts[name] >= RESTART_LIMIT:
                    print(f"weika: {name} exited with {proc.returncode}; stopping", file=sys.stderr, flush=True)
                    stopping = True
                    break
                restarts[name] += 1
                print(f"weika: {name} exited with {proc.returncode}; restart {restarts[name]}/{RESTART_LIMIT}",
                      file=sys.stderr, flush=True)
                time.sleep(min(2 ** restarts[name], 10))
                start(name)
        time.sleep(0.5)

    print("weika: stopping", file=sys.stderr, flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
