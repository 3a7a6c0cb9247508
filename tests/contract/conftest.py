"""Fixtures of the event-bus contract suite: every test runs on the embedded log and on real Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    kind: str  # "embedded" or "kafka"
    bus_spec: str
    db_url: str
    tmp: Path

    def topic(self, name: str) -> str:
        return f"contract.{name}.{uuid.uuid4().hex[:8]}"

    def app(self, *args: str, faults: str = "", check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run tests/contract/app.py as its own process, optionally with a crash point armed."""
        env = dict(os.environ, WEIKA_FAULTS=faults, PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "tests.contract.app", *args, "--bus", self.bus_spec],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"app {args[0]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}")
        return proc

    def open_bus(self, client_id: str = "contract-test"):  # type: ignore[no-untyped-def]
        from tests.contract.app import open_bus

        return open_bus(self.bus_spec, client_id)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Stack:
    if request.param == "embedded":
        return Stack("embedded", f"embedded:{tmp_path / 'events.sqlite3'}",
                     f"sqlite:///{tmp_path / 'service.sqlite3'}", tmp_path)
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    db_url = request.getfixturevalue("fresh_postgres_database")("contract")
    return Stack("kafka", f"kafka:{bootstrap}", db_url, tmp_path)
