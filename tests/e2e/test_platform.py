"""`make run` as a user meets it: health that names what is down, Ctrl-C, restarts, events a partner can read."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import requests

from tests.e2e.platform import Api, Platform, eventually
from tests.e2e.test_money_path import buy, coupon_product, new_merchant


def service_pids(var_dir: Path, module: str) -> list[int]:
    """PIDs of processes running `python -m <module>` for this platform (matched by its WEIKA_VAR_DIR)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in cmdline and f"WEIKA_VAR_DIR={var_dir}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_healthz_names_the_service_that_does_not_answer(platform):
    assert requests.get(platform.url + "/healthz", timeout=10).json()["status"] == "ok"
    [pid] = service_pids(platform.var_dir, "weika_analytics")
    os.kill(pid, signal.SIGSTOP)  # alive but not answering, like a hung pod
    try:
        def unhealthy():  # type: ignore[no-untyped-def]
            resp = requests.get(platform.url + "/healthz", timeout=15)
            return resp.json() if resp.status_code == 503 else None

        body = eventually(unhealthy)
        assert body["services"]["analytics"] != "SERVING"
        assert body["services"]["catalog"] == "SERVING"
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: requests.get(platform.url + "/healthz", timeout=15).status_code == 200)


def test_ctrl_c_stops_every_process_and_data_survives_a_restart(tmp_path):
    first = Platform(tmp_path / "var")
    first.start()
    merchant = new_merchant(first)
    api = Api(first.url, merchant["api_keys"]["test"])
    store = api.post("/v1/stores", json={"name": "Kept", "code": "K-1"}).json()
    category = api.post("/v1/categories", json={"name": "零售券"}).json()
    product = coupon_product(api, category["id"], [store["id"]])
    order = buy(api, product["id"], 1).json()

    assert first.stop() == 0
    for name in ("weika_catalog", "weika_orders", "weika_redemption", "weika_marketing", "weika_analytics",
                 "weika_gateway", "weika_paysim", "weika_kit.redis_standin"):
        assert service_pids(first.var_dir, name) == [], f"{name} still running after Ctrl-C"
    assert not any(port_open(port) for port in first.ports.values())

    second = Platform(first.var_dir, ports=first.ports)
    second.start()
    try:
        api = Api(second.url, merchant["api_keys"]["test"])
        assert api.get(f"/v1/stores/{store['id']}").json()["code"] == "K-1"
        assert api.get(f"/v1/orders/{order['id']}").json()["status"] == "pending_payment"
        assert api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).json()["status"] == "paid"
        eventually(lambda: len(api.get("/v1/coupons", params={"order_id": order["id"]}).json()["data"]) == 1)
    finally:
        assert second.stop() == 0


def read_order_paid(platform, order_id: str):  # type: ignore[no-untyped-def]
    """The order-paid record as a partner sees it: on Kafka with a plain client; in make run's embedded log."""
    topic = "weika.orders.order-paid.v1"
    if platform.mode == "kafka":
        from kafka import KafkaConsumer, TopicPartition

        topic = platform.extra_env["WEIKA_KAFKA_NAMESPACE"] + topic  # this test platform's own topics
        reader = KafkaConsumer(bootstrap_servers=platform.extra_env["KAFKA_BOOTSTRAP_SERVERS"],
                               enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        poll = lambda: [r for rs in reader.poll(timeout_ms=1000).values() for r in rs]  # noqa: E731
    else:
        from weika_kit.bus.embedded import EmbeddedLog

        reader = EmbeddedLog(platform.var_dir / "events.sqlite3").consumer(f"partner-{order_id}", [topic])
        poll = lambda: reader.poll(timeout_s=1.0)  # noqa: E731
    seen: list = []

    def find():  # type: ignore[no-untyped-def]
        seen.extend(poll())
        return next((r for r in seen if r.key == order_id.encode()), None)

    try:
        return eventually(find, timeout=60, interval=0)
    finally:
        reader.close()


def test_partner_decodes_order_paid_with_only_proto_and_a_client(platform):
    from weika.events.v1.orders_pb2 import OrderPaid

    merchant = new_merchant(platform, "Partner Watched")
    api = Api(platform.url, merchant["api_keys"]["test"])
    store = api.post("/v1/stores", json={"name": "P", "code": "P-1"}).json()
    category = api.post("/v1/categories", json={"name": "餐饮券"}).json()
    product = coupon_product(api, category["id"], [store["id"]])
    order = buy(api, product["id"], 3).json()
    assert api.post(f"/v1/orders/{order['id']}/pay", json={"channel": "simulated"}).status_code == 200

    record = read_order_paid(platform, order["id"])
    headers = {k: v.decode() for k, v in record.headers}
    payload = OrderPaid.FromString(record.value)
    assert payload.order_id == order["id"] and payload.paid_amount == 3 * 990
    assert payload.merchant_id == merchant["id"] and payload.mode == "test"
    assert payload.lines[0].quantity == 3 and payload.lines[0].coupon.face_value == 1000
    assert headers["ce_specversion"] == "1.0" and headers["ce_type"] == "weika.orders.order-paid.v1"
    assert headers["ce_source"] == "/weika/orders" and headers["ce_subject"] == order["id"]
    assert headers["ce_merchantid"] == merchant["id"] and headers["ce_mode"] == "test"
    assert headers["content-type"] == "application/protobuf"
    assert headers["ce_dataschema"] == "weika.events.v1.OrderPaid"
    assert headers["ce_time"].endswith("Z") and headers["ce_id"]
