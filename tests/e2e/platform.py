"""The whole platform as real processes: tools/run.py (what `make run` runs) with private ports and data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("catalog", "orders", "redemption", "marketing", "analytics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    var_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    admin_token: str = "e2e-operator-token"
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = {name: free_port() for name in (*SERVICES, "gateway", "redis", "paysim")}
            self.ports.update({f"{name}-http": free_port() for name in SERVICES})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_URL", "REDIS_URL") and not k.startswith("WEIKA_")}
        env.update({
            "WEIKA_VAR_DIR": str(self.var_dir),
            "WEIKA_ADMIN_TOKEN": self.admin_token,
            "WEIKA_GATEWAY_PORT": str(self.ports["gateway"]),
            "WEIKA_GATEWAY_HOST": "127.0.0.1",
            "WEIKA_EMBEDDED_REDIS_PORT": str(self.ports["redis"]),
            "WEIKA_PAYSIM_PORT": str(self.ports["paysim"]),
            "WEIKA_LOG_LEVEL": "WARNING",
        })
        for name in SERVICES:
            env[f"WEIKA_{name.upper()}_GRPC_ADDR"] = f"127.0.0.1:{self.ports[name]}"
            env[f"WEIKA_{name.upper()}_GRPC_BIND"] = f"127.0.0.1:{self.ports[name]}"
            env[f"WEIKA_{name.upper()}_HTTP_PORT"] = str(self.ports[f"{name}-http"])
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = (self.var_dir / "platform.log").open("ab")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "tools" / "run.py")], cwd=ROOT, env=self.env(),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"platform exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"platform not healthy after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> int:
        """Ctrl-C, as a person at `make run` would; every process must be gone afterwards."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise

    def log_tail(self, lines: int = 60) -> str:
        path = self.var_dir / "platform.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Api:
    """A thin REST client: `api.post("/v1/stores", json=...)` with the key as bearer token."""

    def __init__(self, base: str, key: str):
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


def eventually(check, timeout: float = 60.0, interval: float = 0.3):  # type: ignore[no-untyped-def]
    """Call `check` until it returns something truthy (events take a moment to flow)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
