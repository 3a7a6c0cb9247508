"""`python -m weika_gateway` as a real process: migrates, serves on the configured port, logs JSON, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from weika_gateway.clients import SERVICES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_gateway_process_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port = _free_port()
    nowhere = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "WEIKA_VAR_DIR": str(tmp_path), "WEIKA_GATEWAY_HOST": "127.0.0.1",
           "WEIKA_GATEWAY_PORT": str(port), "WEIKA_ADMIN_TOKEN": "proc-token",
           "WEIKA_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.sqlite3'}",
           **{f"WEIKA_{name.upper()}_GRPC_ADDR": nowhere for name in SERVICES}}
    process = subprocess.Popen([sys.executable, "-m", "weika_gateway"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(base + "/livez")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)

        status, health = _get(base + "/healthz")
        assert status == 503 and health["services"]["catalog"] == "UNAVAILABLE"
        status, merchant = _get(base + "/v1/merchants", data=b'{"name": "Proc"}',
                                headers={"Authorization": "Bearer proc-token", "Content-Type": "application/json",
                                         "X-Request-Id": "req-proc-1"})
        assert status == 201 and merchant["api_keys"]["live"].startswith("wk_live_")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)

    assert process.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "req-proc-1" and line.get("route") == "/v1/merchants" for line in lines)
    assert all(line.get("service") == "gateway" for line in lines)
