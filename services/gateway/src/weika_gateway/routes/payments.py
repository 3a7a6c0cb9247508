"""Payment channels: the merchant's WeChat Pay and Alipay settings, the channel test, and the providers'
asynchronous notifications (`POST /v1/payments/<channel>/notify`, no API key: the provider's signature,
verified by the orders service, is what authenticates it)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from weika.orders.v1 import orders_pb2
from weika_gateway import serializers
from weika_gateway.auth import api_key_required, current_caller
from weika_gateway.routes import body_fields
from weika_gateway.state import state
from weika_kit.errors import NotFound, RemoteError

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__, url_prefix="/v1")

CHANNELS = ("wechat", "alipay")
MAX_NOTIFICATION_BYTES = 64 * 1024
MAX_PEM_LENGTH = 8192
CHANNEL_NOT_FOUND = "payment_channel_not_found"


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise NotFound(f"no payment channel {channel!r}: use one of {', '.join(CHANNELS)}",
                       code=CHANNEL_NOT_FOUND, details={"channel": channel})
    return channel


def payment_channel(message: orders_pb2.PaymentChannel) -> dict[str, Any]:
    return {"channel": message.channel, "notify_url": message.notify_url, "settings": dict(message.settings),
            "updated_at": serializers.ts(message, "updated_at")}


def payment_prompt(message: orders_pb2.PaymentPrompt) -> dict[str, Any]:
    return {"channel": message.channel, "out_trade_no": message.out_trade_no, "amount": message.amount,
            "code_url": message.code_url or None, "prepay_id": message.prepay_id or None,
            "qr_code": message.qr_code or None}


@bp.put("/settings/payment-channels/<channel>")
@api_key_required
def configure_channel(channel: str) -> dict[str, Any]:
    channel = _channel(channel)
    fields = body_fields()
    if channel == "wechat":
        config: dict[str, Any] = {"wechat": orders_pb2.WechatPayConfig(
            mchid=fields.text("mchid", max_length=32), appid=fields.text("appid", max_length=32),
            merchant_serial_no=fields.text("merchant_serial_no", max_length=64),
            merchant_private_key_pem=fields.text("merchant_private_key_pem", max_length=MAX_PEM_LENGTH),
            api_v3_key=fields.text("api_v3_key", max_length=64),
            platform_public_key_pem=fields.text("platform_public_key_pem", max_length=MAX_PEM_LENGTH),
            platform_serial_no=fields.optional_text("platform_serial_no", max_length=64) or "")}
    else:
        config = {"alipay": orders_pb2.AlipayConfig(
            app_id=fields.text("app_id", max_length=32),
            app_private_key_pem=fields.text("app_private_key_pem", max_length=MAX_PEM_LENGTH),
            alipay_public_key_pem=fields.text("alipay_public_key_pem", max_length=MAX_PEM_LENGTH))}
    answer = state().clients.configure_payment_channel(
        current_caller(), orders_pb2.ConfigurePaymentChannelRequest(channel=channel, **config))
    return payment_channel(answer)


@bp.get("/settings/payment-channels")
@api_key_required
def list_channels() -> dict[str, Any]:
    answer = state().clients.list_payment_channels(current_caller())
    return {"data": [payment_channel(c) for c in answer.channels]}


@bp.get("/settings/payment-channels/<channel>")
@api_key_required
def get_channel(channel: str) -> dict[str, Any]:
    channel = _channel(channel)
    for configured in state().clients.list_payment_channels(current_caller()).channels:
        if configured.channel == channel:
            return payment_channel(configured)
    raise NotFound(f"{channel} is not configured in this mode: PUT /v1/settings/payment-channels/{channel}",
                   code="payment_channel_not_configured", details={"channel": channel})


@bp.post("/settings/payment-channels/<channel>/test")
@api_key_required
def test_channel(channel: str) -> dict[str, Any]:
    result = state().clients.test_payment_channel(current_caller(), _channel(channel))
    return {"channel": result.channel, "ok": result.ok, "out_trade_no": result.out_trade_no,
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in result.steps]}


@bp.post("/payments/<channel>/notify")
def notify(channel: str) -> Response:
    """Forward the notification exactly as received; answer the provider in the format it expects."""
    channel = _channel(channel)
    body = request.get_data(cache=False)
    if len(body) > MAX_NOTIFICATION_BYTES:
        return _provider_failure(channel, 413, "notification too large")
    notification = orders_pb2.PaymentNotification(
        channel=channel, headers={name.lower(): value for name, value in request.headers.items()}, body=body,
        account=request.args.get("account", ""))
    try:
        reply = state().clients.handle_payment_notification(notification)
    except RemoteError as error:
        # Not processed: the provider must retry, which it does on a failure answer.
        log.error("payment notification not processed", extra={"channel": channel, "code": error.code})
        return _provider_failure(channel, 500, "temporarily unavailable")
    return Response(reply.body, status=reply.http_status, content_type=reply.content_type or None)


def _provider_failure(channel: str, status: int, message: str) -> Response:
    if channel == "alipay":
        return Response(b"failure", status=200, content_type="text/plain")
    return Response(f'{{"code": "FAIL", "message": "{message}"}}', status=status, content_type="application/json")
