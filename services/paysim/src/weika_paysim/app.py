"""The simulator's HTTP face: the providers' merchant APIs, and the customer's side (pay, notify).

Provider APIs (what a merchant calls): WeChat Pay `POST /v3/pay/transactions/native` (Authorization
WECHATPAY2-SHA256-RSA2048 verified with the merchant's registered key; the answer signed by the platform
key) and Alipay `POST /gateway.do` method `alipay.trade.precreate` (RSA2 verified; the answer signed).
Simulator APIs (what a test or the merchant's channel test calls): register merchants, read the platform
keys, and `POST /sim/<channel>/pay` to have the customer pay, which sends the asynchronous notification
to the trade's notify_url, as many times as asked, optionally tampered, stale, or with another amount.
WeChat refunds answer SUCCESS at once, or PROCESSING per merchant (`PUT /sim/wechat/merchants/<mchid>/refunds`)
until `POST /sim/wechat/refund-notify` finishes them; `GET /v3/refund/domestic/refunds/<no>` queries one.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request

from weika_paysim import protocol
from weika_paysim.simulator import AlipayApp, Simulator, Trade, WechatMerchant

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8))
NOTIFY_TIMEOUT_S = 10.0
TAMPERINGS = ("", "signature", "body", "foreign_key")


def create_app(sim: Simulator | None = None) -> Flask:
    sim = sim or Simulator.generate()
    app = Flask("weika_paysim")
    app.extensions["paysim"] = sim

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sim/platform")
    def platform() -> dict[str, Any]:
        return sim.platform()

    @app.post("/sim/wechat/merchants")
    def register_wechat() -> tuple[Response, int]:
        body = request.get_json(force=True)
        try:
            merchant = WechatMerchant(mchid=str(body["mchid"]), appid=str(body["appid"]),
                                      serial_no=str(body["merchant_serial_no"]),
                                      public_key=protocol.load_public(body["merchant_public_key_pem"]),
                                      api_v3_key=str(body["api_v3_key"]))
        except (KeyError, TypeError, ValueError) as error:
            return jsonify({"code": "PARAM_ERROR", "message": str(error)}), 400
        if len(merchant.api_v3_key.encode()) != 32:
            return jsonify({"code": "PARAM_ERROR", "message": "api_v3_key must be 32 bytes"}), 400
        with sim.lock:
            sim.wechat_merchants[merchant.mchid] = merchant
        return jsonify(sim.platform()["wechat"]), 201

    @app.post("/sim/alipay/apps")
    def register_alipay() -> tuple[Response, int]:
        body = request.get_json(force=True)
        try:
            app_ = AlipayApp(app_id=str(body["app_id"]), public_key=protocol.load_public(body["app_public_key_pem"]))
        except (KeyError, TypeError, ValueError) as error:
            return jsonify({"code": "PARAM_ERROR", "message": str(error)}), 400
        with sim.lock:
            sim.alipay_apps[app_.app_id] = app_
        return jsonify(sim.platform()["alipay"]), 201

    @app.post("/v3/pay/transactions/native")
    def wechat_native() -> Response:
        return _wechat_native(sim)

    @app.post("/v3/refund/domestic/refunds")
    def wechat_refund() -> Response:
        return _wechat_refund(sim)

    @app.get("/v3/refund/domestic/refunds/<out_refund_no>")
    def wechat_refund_query(out_refund_no: str) -> Response:
        return _wechat_refund_query(sim, out_refund_no)

    @app.put("/sim/wechat/merchants/<mchid>/refunds")
    def wechat_refund_answer(mchid: str) -> tuple[Response, int]:
        answer = str((request.get_json(force=True) or {}).get("answer", ""))
        if answer not in ("SUCCESS", "PROCESSING"):
            return jsonify({"error": "answer must be SUCCESS or PROCESSING"}), 400
        with sim.lock:
            merchant = sim.wechat_merchants.get(mchid)
            if merchant is None:
                return jsonify({"error": f"no merchant {mchid}"}), 404
            merchant.refund_answer = answer
        return jsonify({"mchid": mchid, "answer": answer}), 200

    @app.post("/sim/wechat/refund-notify")
    def wechat_refund_notify() -> tuple[Response, int]:
        return _refund_notify(sim)

    @app.post("/gateway.do")
    def alipay_gateway() -> Response:
        return _alipay_gateway(sim)

    @app.post("/sim/<channel>/pay")
    def pay(channel: str) -> tuple[Response, int]:
        return _pay(sim, channel)

    return app


@functools.cache
def _foreign_key() -> rsa.RSAPrivateKey:
    """A forger's key: well-formed signatures that no merchant's configured public key verifies."""
    return protocol.new_rsa_key()


# --- WeChat Pay


def _wechat_answer(sim: Simulator, status: int, payload: dict[str, Any]) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    response = Response(body, status=status, content_type="application/json")
    response.headers.update(protocol.platform_headers(sim.wechat_platform_key, sim.wechat_platform_serial, body,
                                                      int(time.time())))
    return response


def _wechat_merchant(sim: Simulator) -> WechatMerchant | str:
    """The merchant whose Authorization signature verifies over this request, or why none does."""
    auth = protocol.parse_authorization(request.headers.get("Authorization", ""))
    if auth is None or not {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} <= auth.keys():
        return "Authorization header missing or malformed"
    merchant = sim.wechat_merchants.get(auth["mchid"])
    if merchant is None or merchant.serial_no != auth["serial_no"]:
        return "unknown merchant or certificate serial"
    if not auth["timestamp"].isdigit() or abs(time.time() - int(auth["timestamp"])) > 300:
        return "timestamp out of range"
    message = protocol.merchant_message(request.method, request.full_path.rstrip("?"), auth["timestamp"],
                                        auth["nonce_str"], request.get_data())
    if not protocol.verify(merchant.public_key, message, auth["signature"]):
        return "signature verification failed"
    return merchant


def _wechat_native(sim: Simulator) -> Response:
    body = request.get_data()
    merchant = _wechat_merchant(sim)
    if isinstance(merchant, str):
        return _wechat_answer(sim, 401, {"code": "SIGN_ERROR", "message": merchant})
    try:
        order = json.loads(body)
        amount = int(order["amount"]["total"])
        trade = Trade("wechat", merchant.mchid, str(order["appid"]), str(order["out_trade_no"]), amount,
                      str(order["notify_url"]), "4200" + secrets.token_hex(12),
                      "weixin://wxpay/bizpayurl?pr=" + secrets.token_urlsafe(6))
    except (KeyError, TypeError, ValueError):
        return _wechat_answer(sim, 400, {"code": "PARAM_ERROR", "message": "appid, out_trade_no, notify_url and "
                                                                          "amount.total are required"})
    if order.get("mchid") != merchant.mchid or trade.appid != merchant.appid:
        return _wechat_answer(sim, 400, {"code": "PARAM_ERROR", "message": "appid and mchid do not match"})
    trade, same = sim.place(trade)
    if not same:
        return _wechat_answer(sim, 400, {"code": "INVALID_REQUEST", "message": "out_trade_no already used with "
                                                                              "another amount"})
    return _wechat_answer(sim, 200, {"code_url": trade.prompt})


def _wechat_refund(sim: Simulator) -> Response:
    merchant = _wechat_merchant(sim)
    if isinstance(merchant, str):
        return _wechat_answer(sim, 401, {"code": "SIGN_ERROR", "message": merchant})
    try:
        ask = json.loads(request.get_data())
        out_refund_no, amount = str(ask["out_refund_no"]), int(ask["amount"]["refund"])
        trade = sim.trade("wechat", merchant.mchid, str(ask["out_trade_no"]))
    except (KeyError, TypeError, ValueError):
        return _wechat_answer(sim, 400, {"code": "PARAM_ERROR", "message": "out_trade_no, out_refund_no and "
                                                                          "amount.refund are required"})
    if trade is None:
        return _wechat_answer(sim, 404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such order"})
    with sim.lock:
        outcome = trade.refund(out_refund_no, amount)
        if outcome == "ok":
            trade.refund_states.setdefault(out_refund_no, merchant.refund_answer)
            if ask.get("notify_url"):
                trade.refund_notify_urls.setdefault(out_refund_no, str(ask["notify_url"]))
    if outcome != "ok":
        return _wechat_answer(sim, 400, {"code": "INVALID_REQUEST", "message": outcome})
    return _wechat_answer(sim, 200, _wechat_refund_view(sim, trade, out_refund_no))


def _wechat_refund_view(sim: Simulator, trade: Trade, out_refund_no: str) -> dict[str, Any]:
    """A refund as the refund API and the refund query answer it."""
    with sim.lock:
        amount, status = trade.refunds[out_refund_no], trade.refund_states.get(out_refund_no, "SUCCESS")
    return {"refund_id": _refund_id(out_refund_no), "out_refund_no": out_refund_no,
            "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no, "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱", "status": status,
            "amount": {"refund": amount, "total": trade.amount, "payer_refund": amount, "payer_total": trade.amount,
                       "currency": "CNY"}}


def _refund_id(out_refund_no: str) -> str:
    return "50300" + out_refund_no[-10:]


def _wechat_refund_query(sim: Simulator, out_refund_no: str) -> Response:
    """GET /v3/refund/domestic/refunds/{out_refund_no}: signed like every merchant request, answer signed."""
    merchant = _wechat_merchant(sim)
    if isinstance(merchant, str):
        return _wechat_answer(sim, 401, {"code": "SIGN_ERROR", "message": merchant})
    trade = sim.trade_of_refund("wechat", merchant.mchid, out_refund_no)
    if trade is None:
        return _wechat_answer(sim, 404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such refund"})
    return _wechat_answer(sim, 200, _wechat_refund_view(sim, trade, out_refund_no))


def wechat_notification(sim: Simulator, trade: Trade, *, trade_state: str, amount: int, mchid: str,
                        timestamp: int, tamper: str) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS notification (or another state): sealed resource, platform signature headers."""
    now = datetime.fromtimestamp(timestamp, BEIJING).isoformat(timespec="seconds")
    transaction = {"mchid": mchid, "appid": trade.appid, "out_trade_no": trade.out_trade_no,
                   "transaction_id": trade.transaction_id, "trade_type": "NATIVE", "trade_state": trade_state,
                   "trade_state_desc": trade_state, "bank_type": "OTHERS", "attach": "", "success_time": now,
                   "payer": {"openid": "oSim" + secrets.token_hex(8)},
                   "amount": {"total": amount, "payer_total": amount, "currency": "CNY", "payer_currency": "CNY"}}
    event_type = "TRANSACTION.SUCCESS" if trade_state == "SUCCESS" else "TRANSACTION." + trade_state
    return _wechat_event(sim, sim.wechat_merchants[trade.account], event_type, "支付成功", transaction,
                         "transaction", timestamp, tamper)


def wechat_refund_notification(sim: Simulator, trade: Trade, out_refund_no: str, *, refund_status: str, amount: int,
                               mchid: str, timestamp: int, tamper: str) -> tuple[dict[str, str], bytes]:
    """A REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED notification, sealed and signed like a payment's."""
    now = datetime.fromtimestamp(timestamp, BEIJING).isoformat(timespec="seconds")
    refund = {"mchid": mchid, "out_trade_no": trade.out_trade_no, "transaction_id": trade.transaction_id,
              "out_refund_no": out_refund_no, "refund_id": _refund_id(out_refund_no), "refund_status": refund_status,
              "success_time": now, "user_received_account": "支付用户零钱",
              "amount": {"total": trade.amount, "refund": amount, "payer_total": trade.amount, "payer_refund": amount}}
    summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}.get(refund_status, refund_status)
    return _wechat_event(sim, sim.wechat_merchants[trade.account], "REFUND." + refund_status, summary, refund,
                         "refund", timestamp, tamper)


def _wechat_event(sim: Simulator, merchant: WechatMerchant, event_type: str, summary: str, resource: dict[str, Any],
                  associated_data: str, timestamp: int, tamper: str) -> tuple[dict[str, str], bytes]:
    """The notification envelope: resource sealed with the API v3 key, body signed by the platform key."""
    now = datetime.fromtimestamp(timestamp, BEIJING).isoformat(timespec="seconds")
    envelope = {"id": secrets.token_hex(16), "create_time": now, "event_type": event_type,
                "resource_type": "encrypt-resource", "summary": summary,
                "resource": protocol.seal_resource(merchant.api_v3_key, resource, associated_data)}
    body = json.dumps(envelope, ensure_ascii=False).encode()
    signer = _foreign_key() if tamper == "foreign_key" else sim.wechat_platform_key
    headers = protocol.platform_headers(signer, sim.wechat_platform_serial, body, timestamp)
    if tamper == "signature":
        headers["Wechatpay-Signature"] = protocol.sign(signer, b"something else")
    if tamper == "body":
        body = body.replace(b'"summary": "', b'"summary": "x', 1)
    headers["Content-Type"] = "application/json"
    return headers, body


# --- Alipay


def _alipay_answer(sim: Simulator, node: str, payload: dict[str, Any]) -> Response:
    inner = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    signature = protocol.sign(sim.alipay_key, inner.encode())
    return Response(f'{{"{node}":{inner},"sign":"{signature}"}}', content_type="application/json;charset=utf-8")


def _alipay_gateway(sim: Simulator) -> Response:
    params = request.form.to_dict()
    node = params.get("method", "alipay.error").replace(".", "_") + "_response"
    if params.get("method") not in ("alipay.trade.precreate", "alipay.trade.refund"):
        return _alipay_answer(sim, node, {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method",
                                          "sub_msg": "only alipay.trade.precreate is simulated"})
    app_ = sim.alipay_apps.get(params.get("app_id", ""))
    if app_ is None:
        return _alipay_answer(sim, node, {"code": "40002", "msg": "Invalid Arguments",
                                          "sub_code": "isv.invalid-app-id", "sub_msg": "unknown app_id"})
    if params.get("sign_type") != "RSA2" or not protocol.verify(app_.public_key, protocol.alipay_content(params),
                                                                 params.get("sign", "")):
        return _alipay_answer(sim, node, {"code": "40002", "msg": "Invalid Arguments",
                                          "sub_code": "isv.invalid-signature", "sub_msg": "signature check failed"})
    if params["method"] == "alipay.trade.refund":
        return _alipay_refund(sim, app_, node, params)
    try:
        biz = json.loads(params["biz_content"])
        yuan_amount = str(biz["total_amount"])
        whole, _, cents = yuan_amount.partition(".")
        amount = int(whole) * 100 + int((cents + "00")[:2])
        trade = Trade("alipay", app_.app_id, app_.app_id, str(biz["out_trade_no"]), amount, params["notify_url"],
                      datetime.now(UTC).strftime("%Y%m%d") + secrets.token_hex(10),
                      "https://qr.alipay.com/" + secrets.token_urlsafe(12))
    except (KeyError, TypeError, ValueError):
        return _alipay_answer(sim, node, {"code": "40002", "msg": "Invalid Arguments",
                                          "sub_code": "isv.missing-parameter", "sub_msg": "biz_content incomplete"})
    trade, same = sim.place(trade)
    if not same:
        return _alipay_answer(sim, node, {"code": "40004", "msg": "Business Failed",
                                          "sub_code": "ACQ.TRADE_HAS_CLOSE", "sub_msg": "out_trade_no reused"})
    return _alipay_answer(sim, node, {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no,
                                      "qr_code": trade.prompt})


def _fen(yuan_amount: str) -> int:
    whole, _, cents = yuan_amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def _alipay_refund(sim: Simulator, app_: AlipayApp, node: str, params: dict[str, str]) -> Response:
    try:
        biz = json.loads(params["biz_content"])
        out_request_no, amount = str(biz["out_request_no"]), _fen(str(biz["refund_amount"]))
        trade = sim.trade("alipay", app_.app_id, str(biz["out_trade_no"]))
    except (KeyError, TypeError, ValueError):
        return _alipay_answer(sim, node, {"code": "40002", "msg": "Invalid Arguments",
                                          "sub_code": "isv.missing-parameter", "sub_msg": "biz_content incomplete"})
    if trade is None:
        return _alipay_answer(sim, node, {"code": "40004", "msg": "Business Failed",
                                          "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "no such trade"})
    with sim.lock:
        outcome = trade.refund(out_request_no, amount)
    if outcome != "ok":
        return _alipay_answer(sim, node, {"code": "40004", "msg": "Business Failed",
                                          "sub_code": "ACQ." + outcome.upper(), "sub_msg": outcome})
    with sim.lock:
        refunded = sum(trade.refunds.values())
    return _alipay_answer(sim, node, {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no,
                                      "trade_no": trade.transaction_id, "fund_change": "Y",
                                      "refund_fee": protocol.yuan(refunded)})


def alipay_notification(sim: Simulator, trade: Trade, *, trade_status: str, amount: int, app_id: str,
                        timestamp: int, tamper: str) -> tuple[dict[str, str], bytes]:
    sent = datetime.fromtimestamp(timestamp, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    params = {"notify_time": sent, "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
              "charset": "utf-8", "version": "1.0", "app_id": app_id, "trade_no": trade.transaction_id,
              "out_trade_no": trade.out_trade_no, "trade_status": trade_status, "total_amount": protocol.yuan(amount),
              "receipt_amount": protocol.yuan(amount), "buyer_pay_amount": protocol.yuan(amount),
              "gmt_create": sent, "gmt_payment": sent, "subject": "Weika order", "buyer_logon_id": "sim***@example.com"}
    signer = _foreign_key() if tamper == "foreign_key" else sim.alipay_key
    params["sign"] = protocol.sign(signer, protocol.alipay_content(params))
    params["sign_type"] = "RSA2"
    if tamper == "signature":
        params["sign"] = protocol.sign(signer, b"something else")
    if tamper == "body":
        params["total_amount"] = protocol.yuan(amount + 1)
    return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, urlencode(params).encode()


# --- the customer pays


def _pay(sim: Simulator, channel: str) -> tuple[Response, int]:
    """Notify the trade's notify_url that the customer paid: `repeat` times, with the requested distortions.

    JSON body: out_trade_no (required), repeat (1), trade_state ("SUCCESS" / "TRADE_SUCCESS"), amount (the
    trade's), account override (mchid / app_id), timestamp_offset_s (0), tamper ("", "signature", "body",
    "foreign_key"), deliver (true; false only builds the notifications, for a test to send or replay).
    """
    options = request.get_json(force=True) or {}
    if channel not in ("wechat", "alipay"):
        return jsonify({"error": f"unknown channel {channel}"}), 404
    trade = sim.find_trade(channel, str(options.get("out_trade_no", "")))
    if trade is None:
        return jsonify({"error": "no such trade: place it through the provider API first"}), 404
    tamper = str(options.get("tamper", ""))
    if tamper not in TAMPERINGS:
        return jsonify({"error": f"tamper must be one of {TAMPERINGS}"}), 400
    timestamp = int(time.time()) + int(options.get("timestamp_offset_s", 0))
    amount = int(options.get("amount", trade.amount))
    notifications = []
    for _ in range(max(1, int(options.get("repeat", 1)))):
        if channel == "wechat":
            headers, body = wechat_notification(
                sim, trade, trade_state=str(options.get("trade_state", "SUCCESS")), amount=amount,
                mchid=str(options.get("account", trade.account)), timestamp=timestamp, tamper=tamper)
        else:
            headers, body = alipay_notification(
                sim, trade, trade_status=str(options.get("trade_state", "TRADE_SUCCESS")), amount=amount,
                app_id=str(options.get("account", trade.account)), timestamp=timestamp, tamper=tamper)
        notifications.append((headers, body))
    deliveries = [_deliver(trade, channel, headers, body) for headers, body in notifications] \
        if options.get("deliver", True) else []
    if tamper == "" and str(options.get("trade_state", "SUCCESS")) in ("SUCCESS", "TRADE_SUCCESS"):
        with sim.lock:
            trade.paid = True  # the customer paid, whatever the merchant answered
    return jsonify({"notify_url": trade.notify_url, "deliveries": deliveries,
                    "notifications": [{"headers": h, "body": b.decode()} for h, b in notifications]}), 200


def _refund_notify(sim: Simulator) -> tuple[Response, int]:
    """Have WeChat Pay finish a refund: notify the refund's notify_url of its result.

    JSON body: out_refund_no (required), refund_status ("SUCCESS" | "ABNORMAL" | "CLOSED"), repeat (1),
    amount (the refund's), account override (mchid), timestamp_offset_s (0), tamper (as for /pay), deliver
    (true). An untampered notification also sets the refund's status, as the refund query then answers it.
    """
    options = request.get_json(force=True) or {}
    out_refund_no = str(options.get("out_refund_no", ""))
    with sim.lock:
        trade = next((t for (c, _, _), t in sim.trades.items() if c == "wechat" and out_refund_no in t.refunds), None)
    if trade is None:
        return jsonify({"error": "no such refund: ask for it through the refund API first"}), 404
    status, tamper = str(options.get("refund_status", "SUCCESS")), str(options.get("tamper", ""))
    if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
        return jsonify({"error": "refund_status must be SUCCESS, ABNORMAL or CLOSED"}), 400
    if tamper not in TAMPERINGS:
        return jsonify({"error": f"tamper must be one of {TAMPERINGS}"}), 400
    with sim.lock:
        amount = int(options.get("amount", trade.refunds[out_refund_no]))
        url = trade.refund_notify_urls.get(out_refund_no, "")
        if tamper == "":
            trade.refund_states[out_refund_no] = status
    timestamp = int(time.time()) + int(options.get("timestamp_offset_s", 0))
    notifications = [wechat_refund_notification(sim, trade, out_refund_no, refund_status=status, amount=amount,
                                                mchid=str(options.get("account", trade.account)),
                                                timestamp=timestamp, tamper=tamper)
                     for _ in range(max(1, int(options.get("repeat", 1))))]
    deliver = options.get("deliver", True)
    if deliver and not url:
        return jsonify({"error": "the refund request named no notify_url"}), 409
    deliveries = [_deliver(trade, "wechat", headers, body, url) for headers, body in notifications] if deliver else []
    return jsonify({"notify_url": url, "deliveries": deliveries,
                    "notifications": [{"headers": h, "body": b.decode()} for h, b in notifications]}), 200


def _deliver(trade: Trade, channel: str, headers: dict[str, str], body: bytes, url: str = "") -> dict[str, Any]:
    try:
        response = requests.post(url or trade.notify_url, data=body, headers=headers, timeout=NOTIFY_TIMEOUT_S)
    except requests.RequestException as error:
        log.warning("notification not delivered: %s", error)
        return {"delivered": False, "status": 0, "body": str(error)}
    accepted = (response.status_code in (200, 204) if channel == "wechat"
                else response.status_code == 200 and response.text.strip() == "success")
    return {"delivered": accepted, "status": response.status_code, "body": response.text[:500]}
