"""Payment channels: the merchant's settings, paying through a provider, and the provider's notifications.

A notification is trusted only after the checks the real provider requires. WeChat Pay v3: the
Wechatpay-Serial is the configured platform key's, the timestamp is within 5 minutes, the RSA-SHA256
signature over "timestamp\\nnonce\\nbody\\n" verifies with the platform key, the resource decrypts with the
API v3 key (AES-256-GCM), mchid and appid are the merchant's. Alipay: the RSA2 signature over the sorted
parameters verifies with the Alipay public key, app_id is the merchant's, notify_time is within 5 minutes.
Then out_trade_no must be one of the merchant's orders and the amount its payable amount, and the order
is paid by the same conditional `pending_payment -> paid` update as every payment: a duplicate changes
nothing. Every notification is recorded in payment_notifications with its verdict.

Money notified for an order that can no longer be paid (cancelled: the customer paid as the auto-cancel timer
won; or paid through the other channel) is a stray payment: recorded once per provider transaction in the
same transaction as the verdict, then refunded through its channel with a refund number derived from its
id (a retry is a no-op at the provider). A refund attempt that fails is retried by the sweeper with backoff,
each attempt claimed by a conditional update so one replica makes it, until MAX_STRAY_REFUND_ATTEMPTS.

Refunds (and stray payments' returns) carry the provider's money status: Alipay's answer is final
(`succeeded`); WeChat's is often `processing`, and the result comes as a REFUND.* notification to the same
notify URL (told apart by event_type, verified exactly as payments are, then the out_refund_no must be ours
for that order and the amount its amount) or, failing that, from the sweeper's query after REFUND_QUERY_AFTER,
claimed per query and backed off. A result moves the status once: `refund_money_returned`, `refund_abnormal` or
`refund_closed` in the order history; abnormal and closed are errors the merchant must act on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from weika_kit import context, crypto, ids
from weika_kit.context import Caller
from weika_kit.db import Database
from weika_kit.errors import DomainError
from weika_orders import metrics
from weika_orders.adapters import provider_crypto as pc
from weika_orders.adapters import providers
from weika_orders.adapters.payments_repository import (
    PaymentsRepository,
    RefundMoney,
    channel_by_account,
    record_notification,
    refunds_awaiting_provider,
    stray_refunds_due,
)
from weika_orders.adapters.repository import OrdersRepository
from weika_orders.config import PaymentSettings
from weika_orders.domain import errors
from weika_orders.domain import payment_channels as pch
from weika_orders.domain.model import PENDING_PAYMENT, Order, transition_refused
from weika_orders.domain.payment_channels import (
    ALIPAY,
    CHANNEL_TEST_AMOUNT,
    CHANNEL_TEST_PREFIX,
    WECHAT,
    AlipayConfig,
    ChannelConfig,
    Verdict,
    WechatPayConfig,
)
from weika_orders.service_layer.services import _must_get, record_payment

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_STRAY_REFUND_ATTEMPTS = 10
STRAY_REFUND_FIRST_RETRY = timedelta(minutes=1)  # doubled after every failed attempt, up to the cap below
STRAY_REFUND_MAX_BACKOFF = timedelta(hours=1)
REFUND_QUERY_AFTER = timedelta(minutes=5)  # a processing refund not notified by then is queried; doubled after
REFUND_QUERY_MAX_BACKOFF = timedelta(hours=1)  # every query still processing, up to this cap
ALIPAY_SUCCESS_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")


@dataclass(frozen=True)
class ChannelView:
    channel: str
    notify_url: str
    settings: dict[str, str]
    updated_at: datetime


@dataclass(frozen=True)
class NotificationReply:
    http_status: int
    content_type: str
    body: bytes
    verdict: str


@dataclass(frozen=True)
class TestStep:
    name: str
    ok: bool
    detail: str


def notify_url(settings: PaymentSettings, channel: str, account_id: str) -> str:
    return f"{settings.notify_base_url.rstrip('/')}/v1/payments/{channel}/notify?account={account_id}"


def _provider_urls(settings: PaymentSettings, mode: str) -> tuple[str, str]:
    """(WeChat Pay API base, Alipay gateway) for `mode`: test mode only ever talks to the simulator."""
    if settings.simulator_url:
        base = settings.simulator_url.rstrip("/")
        return base, base + "/gateway.do"
    if mode == "test":
        raise errors.PaymentSimulatorNotConfigured(
            "test mode pays only through the payment simulator, and none is configured (WEIKA_PAYSIM_URL)",
            details={"mode": mode})
    return settings.wechatpay_url, settings.alipay_gateway_url


# --- settings


def _checked_key(pem: str, field: str, *, private: bool) -> str | None:
    """The certificate serial of a public key given as a certificate; InvalidPaymentChannelConfig if unusable."""
    try:
        if private:
            pc.load_private_key(pem)
            return None
        return pc.load_public_key(pem)[1]
    except pc.UnusableKey as error:
        raise errors.InvalidPaymentChannelConfig(f"{field}: {error}", details={"field": field}) from None


def parse_config(channel: str, raw: dict[str, str]) -> ChannelConfig:
    """A channel configuration, with every key loaded once so an unusable one is refused now, not at payment."""
    if channel == WECHAT:
        config = WechatPayConfig.parse(**raw)
        _checked_key(config.merchant_private_key_pem, "merchant_private_key_pem", private=True)
        serial = _checked_key(config.platform_public_key_pem, "platform_public_key_pem", private=False)
        if serial is None and not config.platform_serial_no:
            raise errors.InvalidPaymentChannelConfig(
                "platform_serial_no is required with a platform public key (it is in the certificate otherwise)",
                details={"field": "platform_serial_no"})
        if serial is not None:
            config = WechatPayConfig(**{**config.__dict__, "platform_serial_no": serial})
        return config
    config_a = AlipayConfig.parse(**raw)
    _checked_key(config_a.app_private_key_pem, "app_private_key_pem", private=True)
    _checked_key(config_a.alipay_public_key_pem, "alipay_public_key_pem", private=False)
    return config_a


def masked(config: ChannelConfig) -> dict[str, str]:
    if isinstance(config, WechatPayConfig):
        return {"mchid": config.mchid, "appid": config.appid, "merchant_serial_no": config.merchant_serial_no,
                "merchant_private_key": pc.key_fingerprint(config.merchant_private_key_pem),
                "api_v3_key": pch.mask_secret(config.api_v3_key),
                "platform_public_key": pc.key_fingerprint(config.platform_public_key_pem),
                "platform_serial_no": config.platform_serial_no}
    return {"app_id": config.app_id, "app_private_key": pc.key_fingerprint(config.app_private_key_pem),
            "alipay_public_key": pc.key_fingerprint(config.alipay_public_key_pem)}


def _view(settings: PaymentSettings, row: Any) -> ChannelView:
    return ChannelView(row.channel, notify_url(settings, row.channel, row.id), json.loads(row.masked_settings),
                       row.updated_at)


def configure_channel(db: Database, settings: PaymentSettings, caller: Caller, channel: str,
                      raw: dict[str, str]) -> ChannelView:
    channel = pch.require_provider_channel(channel)
    config = parse_config(channel, raw)
    with db.unit_of_work() as uow:
        repo = PaymentsRepository(uow, caller)
        repo.save_channel(channel, config.account_ref, crypto.encrypt(config.to_json()), json.dumps(masked(config)))
        row = repo.channel(channel)
        uow.commit()
    log.info("payment channel configured", extra={"channel": channel})
    return _view(settings, row)


def list_channels(db: Database, settings: PaymentSettings, caller: Caller) -> list[ChannelView]:
    with db.unit_of_work() as uow:
        return [_view(settings, row) for row in PaymentsRepository(uow, caller).channels()]


def _load_config(row: Any) -> ChannelConfig:
    return pch.config_from_json(row.channel, crypto.decrypt(row.config_encrypted))


def _configured(db: Database, caller: Caller, channel: str) -> tuple[str, ChannelConfig]:
    with db.unit_of_work() as uow:
        row = PaymentsRepository(uow, caller).channel(channel)
    if row is None:
        raise errors.PaymentChannelNotConfigured(
            f"{channel} is not configured for this merchant in {caller.mode} mode: "
            f"PUT /v1/settings/payment-channels/{channel} first", details={"channel": channel, "mode": caller.mode})
    return row.id, _load_config(row)


# --- paying through a provider


def _ask_provider(settings: PaymentSettings, caller: Caller, channel: str, account_id: str, config: ChannelConfig,
                  out_trade_no: str, description: str, amount: int, now: datetime) -> providers.ProviderPrompt:
    wechat_url, alipay_url = _provider_urls(settings, caller.mode)
    url = notify_url(settings, channel, account_id)
    if isinstance(config, WechatPayConfig):
        return providers.wechat_native(wechat_url, config, out_trade_no=out_trade_no, description=description,
                                       amount=amount, notify_url=url, now=now)
    return providers.alipay_precreate(alipay_url, config, out_trade_no=out_trade_no, subject=description,
                                      amount=amount, notify_url=url, now=now)


def start_channel_payment(db: Database, settings: PaymentSettings, caller: Caller, order_id: str,
                          channel: str) -> tuple[Order, providers.ProviderPrompt]:
    """What the buyer's app needs to pay a pending order through `channel`; asking again answers the same."""
    with db.unit_of_work() as uow:
        order = _must_get(OrdersRepository(uow, caller), caller, order_id)
        intent = PaymentsRepository(uow, caller).intent(order_id, channel)
    if order.status != PENDING_PAYMENT:
        raise transition_refused(order.status, "paid")
    if intent is not None and intent.amount == order.payable_amount:
        return order, providers.ProviderPrompt(code_url=intent.code_url, prepay_id=intent.prepay_id,
                                               qr_code=intent.qr_code)
    account_id, config = _configured(db, caller, channel)
    description = ", ".join(line.product_name for line in order.lines)[:120] or order.id
    prompt = _ask_provider(settings, caller, channel, account_id, config, order.id, description,
                           order.payable_amount, db.clock())
    with db.unit_of_work() as uow:
        PaymentsRepository(uow, caller).add_intent(order_id, channel, order.payable_amount, prompt.code_url,
                                                   prompt.prepay_id, prompt.qr_code)
        uow.commit()
    log.info("payment requested from provider", extra={"order_id": order_id, "channel": channel})
    return order, prompt


def refund_through_channel(db: Database, settings: PaymentSettings, caller: Caller, order: Order, refund_id: str,
                           amount: int) -> str:
    """Money back through the provider the order was paid with; the refund id makes a retry a no-op there.
    The money status the provider answered (processing or succeeded)."""
    return _refund_at_provider(db, settings, caller, order.channel, order.id, refund_id, amount, order.paid_amount)


def _refund_at_provider(db: Database, settings: PaymentSettings, caller: Caller, channel: str, out_trade_no: str,
                        refund_no: str, amount: int, total: int) -> str:
    """`amount` of the `total` paid for `out_trade_no` through `channel` back to the customer; the money status.
    WeChat notifies the result of a processing refund to the same notify URL as payments."""
    account_id, config = _configured(db, caller, channel)
    wechat_url, alipay_url = _provider_urls(settings, caller.mode)
    if isinstance(config, WechatPayConfig):
        return providers.wechat_refund(wechat_url, config, out_trade_no=out_trade_no, out_refund_no=refund_no,
                                       refund=amount, total=total, notify_url=notify_url(settings, channel, account_id),
                                       now=db.clock())
    return providers.alipay_refund(alipay_url, config, out_trade_no=out_trade_no, out_request_no=refund_no,
                                   refund=amount, now=db.clock())


def record_refund_answer(uow: Any, tenant: Caller, refund_no: str, order_id: str, status: str) -> None:
    """The provider's synchronous answer to a refund (processing, or succeeded at once), unless its result was
    notified already; a processing refund is queried by the sweeper from now on."""
    repo = PaymentsRepository(uow, tenant)
    money = repo.refund_money(refund_no, order_id)
    if money is not None and repo.set_refund_money_status(money, status, (None,)):
        metrics.REFUND_OUTCOMES.labels(money.channel, status).inc()


def apply_refund_result(uow: Any, tenant: Caller, money: RefundMoney, status: str) -> bool:
    """A refund's result from the provider (notified or queried): its money status moves once, with a history
    entry on the order; abnormal and closed are logged as errors, since the merchant must act."""
    if not PaymentsRepository(uow, tenant).set_refund_money_status(money, status,
                                                                   pch.refund_status_may_become(status)):
        return False
    orders = OrdersRepository(uow, tenant)
    current = orders.status_of(money.order_id) or ""
    orders.add_history(money.order_id, current, current, f"provider:{money.channel}",
                       pch.REFUND_HISTORY_REASONS[status])
    extra = {"order_id": money.order_id, "refund_no": money.refund_no, "channel": money.channel,
             "amount": money.amount, "money_status": status}
    if status == pch.REFUND_SUCCEEDED:
        log.info("refund money returned", extra=extra)
    else:
        log.error("refund money not returned by the provider: the merchant must act", extra=extra)
    return True


# --- notifications


def _fresh(at: datetime, now: datetime) -> bool:
    return abs(now - at) <= MAX_CLOCK_SKEW


def verify_wechat(config: WechatPayConfig, headers: dict[str, str], body: bytes, now: datetime) -> Verdict:
    """The WeChat Pay v3 checks, in the provider's order; the decrypted transaction decides the rest."""
    timestamp, nonce = headers.get("wechatpay-timestamp", ""), headers.get("wechatpay-nonce", "")
    signature, serial = headers.get("wechatpay-signature", ""), headers.get("wechatpay-serial", "")
    if not (timestamp and nonce and signature and serial):
        return Verdict(pch.REJECTED, "missing_signature_headers")
    if serial != config.platform_serial_no:
        return Verdict(pch.REJECTED, "unknown_platform_serial")
    # at most 11 digits: a larger number is no timestamp (and would overflow datetime)
    if not (timestamp.isdigit() and len(timestamp) <= 11) or \
            not _fresh(datetime.fromtimestamp(int(timestamp), now.tzinfo), now):
        return Verdict(pch.REJECTED, "stale_timestamp")
    platform_key, _ = pc.load_public_key(config.platform_public_key_pem)
    if not pc.rsa_sha256_verify(platform_key, pc.wechat_response_message(timestamp, nonce, body), signature):
        return Verdict(pch.REJECTED, "bad_signature")
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            return Verdict(pch.REJECTED, "unsupported_algorithm")
        plain = pc.wechat_decrypt_resource(config.api_v3_key, resource["nonce"], resource.get("associated_data", ""),
                                           resource["ciphertext"])
        transaction = json.loads(plain)
        if str(envelope.get("event_type", "")).startswith("REFUND."):
            return _wechat_refund_verdict(config, envelope, transaction)
        out_trade_no = str(transaction["out_trade_no"])
        amount = int(transaction["amount"]["total"])
    except (ValueError, KeyError, TypeError):
        return Verdict(pch.REJECTED, "malformed_resource")
    said = {"out_trade_no": out_trade_no, "notification_id": str(envelope.get("id", "")),
            "transaction_id": str(transaction.get("transaction_id", "")), "amount": amount}
    if transaction.get("mchid") != config.mchid or transaction.get("appid") != config.appid:
        return Verdict(pch.REJECTED, "merchant_mismatch", **said)
    if envelope.get("event_type") != "TRANSACTION.SUCCESS" or transaction.get("trade_state") != "SUCCESS":
        return Verdict(pch.IGNORED, f"trade_state_{str(transaction.get('trade_state', '')).lower()}"[:64], **said)
    if transaction.get("amount", {}).get("currency", "CNY") != "CNY":
        return Verdict(pch.REJECTED, "currency_mismatch", **said)
    return Verdict(pch.PAID, "verified", **said)


def _wechat_refund_verdict(config: WechatPayConfig, envelope: dict[str, Any], refund: dict[str, Any]) -> Verdict:
    """A refund result (REFUND.SUCCESS | REFUND.ABNORMAL | REFUND.CLOSED) from a verified, decrypted envelope."""
    said = {"out_trade_no": str(refund["out_trade_no"]), "notification_id": str(envelope.get("id", "")),
            "transaction_id": str(refund.get("refund_id", "")), "amount": int(refund["amount"]["refund"]),
            "refund_no": str(refund["out_refund_no"])}
    if refund.get("mchid") != config.mchid:
        return Verdict(pch.REJECTED, "merchant_mismatch", **said)
    told = str(refund.get("refund_status", ""))
    if envelope.get("event_type") != f"REFUND.{told}":
        return Verdict(pch.REJECTED, "malformed_resource", **said)
    status = pch.WECHAT_REFUND_STATUSES.get(told)
    if status is None or status == pch.REFUND_PROCESSING:
        return Verdict(pch.IGNORED, f"refund_status_{told.lower()}"[:64], **said)
    return Verdict(pch.REFUND_SETTLED, f"refund_{told.lower()}"[:64], **said, refund_status=status)


def verify_alipay(config: AlipayConfig, body: bytes, now: datetime) -> Verdict:
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        return Verdict(pch.REJECTED, "malformed_body")
    said = {"out_trade_no": params.get("out_trade_no", ""), "notification_id": params.get("notify_id", ""),
            "transaction_id": params.get("trade_no", ""), "amount": pc.fen_of_yuan(params.get("total_amount", ""))}
    if params.get("sign_type") != "RSA2" or not params.get("sign"):
        return Verdict(pch.REJECTED, "missing_signature", **said)
    alipay_key, _ = pc.load_public_key(config.alipay_public_key_pem)
    if not pc.alipay_verify(alipay_key, params):
        return Verdict(pch.REJECTED, "bad_signature", **said)
    if params.get("app_id") != config.app_id:
        return Verdict(pch.REJECTED, "merchant_mismatch", **said)
    try:
        sent_at = datetime.strptime(params.get("notify_time", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=providers.BEIJING)
    except ValueError:
        return Verdict(pch.REJECTED, "stale_timestamp", **said)
    if not _fresh(sent_at, now):
        return Verdict(pch.REJECTED, "stale_timestamp", **said)
    if said["amount"] is None:
        return Verdict(pch.REJECTED, "malformed_amount", **said)
    if params.get("trade_status") not in ALIPAY_SUCCESS_STATES:
        return Verdict(pch.IGNORED, f"trade_status_{params.get('trade_status', '').lower()}"[:64], **said)
    return Verdict(pch.PAID, "verified", **said)


def _reply(channel: str, verdict: Verdict) -> NotificationReply:
    """What the provider expects: WeChat 204 (or 4xx with {code, message}); Alipay `success` / `failure`."""
    if channel == ALIPAY:
        return NotificationReply(200, "text/plain", b"success" if verdict.acknowledged else b"failure",
                                 verdict.verdict)
    if verdict.acknowledged:
        return NotificationReply(204, "", b"", verdict.verdict)
    body = json.dumps({"code": "FAIL", "message": verdict.reason}).encode()
    return NotificationReply(400 if verdict.reason != "internal_error" else 500, "application/json", body,
                             verdict.verdict)


def handle_notification(db: Database, settings: PaymentSettings, channel: str, headers: dict[str, str], body: bytes,
                        account_id: str) -> NotificationReply:
    """Verify a provider notification; pay the order exactly once (or return money it cannot take); record and
    answer every notification."""
    channel = channel.strip()
    if channel not in pch.PROVIDER_CHANNELS:
        return _finish(db, channel, account_id, None, Verdict(pch.REJECTED, "unknown_channel"))
    with db.unit_of_work() as uow:
        row = channel_by_account(uow, account_id, channel) if account_id else None
    if row is None:
        return _finish(db, channel, account_id, None, Verdict(pch.REJECTED, "unknown_account"))
    tenant = Caller(row.merchant_id, row.mode, staff_id=f"provider:{channel}", role="system")
    with context.bound(caller=tenant):
        config = _load_config(row)
        now = db.clock()
        verdict = (verify_wechat(config, headers, body, now) if isinstance(config, WechatPayConfig)
                   else verify_alipay(config, body, now))
        if verdict.verdict == pch.REFUND_SETTLED:
            return _settle_refund(db, tenant, channel, account_id, verdict)
        if verdict.verdict != pch.PAID:
            return _finish(db, channel, account_id, tenant, verdict)
        return _settle(db, settings, tenant, channel, account_id, verdict)


def _settle_refund(db: Database, tenant: Caller, channel: str, account_id: str, verdict: Verdict) -> NotificationReply:
    """A verified refund result: one of our refunds (the number and the order ours, the amount its amount) moves
    to the notified money status once; a repeat, or a result after a final one, changes nothing."""
    moved = False
    with db.unit_of_work() as uow:
        repo = PaymentsRepository(uow, tenant)
        money = repo.refund_money(verdict.refund_no, verdict.out_trade_no)
        if money is None or money.channel != channel:
            outcome = replace(verdict, verdict=pch.REJECTED, reason="unknown_refund")
        elif verdict.amount != money.amount:
            outcome = replace(verdict, verdict=pch.REJECTED, reason="amount_mismatch")
        elif apply_refund_result(uow, tenant, money, verdict.refund_status):
            outcome, moved = verdict, True
        else:
            now_at = repo.refund_money(verdict.refund_no, verdict.out_trade_no)
            outcome = replace(verdict, verdict=pch.DUPLICATE,
                              reason=f"refund_already_{now_at.status if now_at else 'settled'}"[:64])
        _record(uow, tenant, channel, account_id, outcome)
        uow.commit()
    if moved:
        metrics.REFUND_OUTCOMES.labels(channel, verdict.refund_status).inc()
    return _answer(channel, outcome)


def _settle(db: Database, settings: PaymentSettings, tenant: Caller, channel: str, account_id: str,
            verdict: Verdict) -> NotificationReply:
    """A verified success: a channel test is confirmed; an order is paid if the amount is its payable amount."""
    if verdict.out_trade_no.startswith(CHANNEL_TEST_PREFIX):
        ok = verdict.amount == CHANNEL_TEST_AMOUNT
        return _finish(db, channel, account_id, tenant, Verdict(
            pch.TEST_VERIFIED if ok else pch.REJECTED, "verified" if ok else "amount_mismatch",
            verdict.out_trade_no, verdict.notification_id, verdict.transaction_id, verdict.amount))
    stray_id: str | None = None
    with db.unit_of_work() as uow:
        repo = OrdersRepository(uow, tenant)
        order = repo.get_order(verdict.out_trade_no)
        if order is None:
            outcome = Verdict(pch.REJECTED, "unknown_order", *_said(verdict))
        elif verdict.amount != order.payable_amount:
            outcome = Verdict(pch.REJECTED, "amount_mismatch", *_said(verdict))
        elif record_payment(uow, repo, tenant, order, channel, f"provider:{channel}",
                            verdict.transaction_id) is not None:
            outcome = verdict
        elif _paid_through(repo.get_order(order.id), channel):
            # Re-read: the order read above may predate a concurrent delivery of this same notification.
            outcome = Verdict(pch.DUPLICATE, "already_paid", *_said(verdict))
        else:
            order = repo.get_order(order.id) or order
            # Money arrived for an order that is cancelled or paid another way: acknowledged (the provider
            # holds the money either way) and recorded as a stray payment to return, once per transaction.
            stray_id = PaymentsRepository(uow, tenant).add_stray_payment(
                order.id, channel, verdict.transaction_id, verdict.amount or 0)
            if stray_id is None:
                outcome = Verdict(pch.DUPLICATE, "already_returning", *_said(verdict))
            else:
                outcome = Verdict(pch.NOT_PAYABLE, f"order_{order.status}"[:64], *_said(verdict))
                repo.add_history(order.id, order.status, order.status, f"provider:{channel}",
                                 "late_payment_refunding")
                log.warning("payment notified for an order that cannot be paid; returning it",
                            extra={"order_id": order.id, "status": order.status, "channel": channel,
                                   "stray_payment_id": stray_id, "amount": verdict.amount})
        _record(uow, tenant, channel, account_id, outcome)
        uow.commit()
    if outcome.verdict == pch.PAID:
        metrics.ORDERS_PAID.labels(tenant.mode, channel).inc()
    if stray_id is not None:
        metrics.STRAY_PAYMENTS.labels(channel, "recorded").inc()
        try:
            refund_stray_payment(db, settings, tenant, stray_id, attempts_seen=0)
        except Exception:
            # Acknowledged all the same: the stray payment is committed and the sweeper retries it.
            log.exception("refund of a stray payment failed; the sweeper retries it",
                          extra={"stray_payment_id": stray_id, "order_id": verdict.out_trade_no})
    return _answer(channel, outcome)


def _paid_through(order: Order | None, channel: str) -> bool:
    return order is not None and order.channel == channel and order.paid_at is not None


def _said(verdict: Verdict) -> tuple[str, str, str, int | None]:
    return verdict.out_trade_no, verdict.notification_id, verdict.transaction_id, verdict.amount


def _record(uow: Any, tenant: Caller | None, channel: str, account_id: str, verdict: Verdict) -> None:
    record_notification(
        uow, merchant_id=tenant.merchant_id if tenant else "", mode=tenant.mode if tenant else "",
        channel=channel[:16], account_id=account_id, out_trade_no=verdict.out_trade_no,
        notification_id=verdict.notification_id, transaction_id=verdict.transaction_id, amount=verdict.amount,
        verdict=verdict.verdict, reason=verdict.reason)


def _finish(db: Database, channel: str, account_id: str, tenant: Caller | None, verdict: Verdict) -> NotificationReply:
    with db.unit_of_work() as uow:
        _record(uow, tenant, channel, account_id, verdict)
        uow.commit()
    return _answer(channel, verdict)


def _answer(channel: str, verdict: Verdict) -> NotificationReply:
    metrics.PAYMENT_NOTIFICATIONS.labels(channel if channel in pch.PROVIDER_CHANNELS else "unknown",
                                         verdict.verdict).inc()
    level = logging.WARNING if verdict.verdict == pch.REJECTED else logging.INFO
    log.log(level, "payment notification", extra={"channel": channel, "verdict": verdict.verdict,
                                                  "reason": verdict.reason, "order_id": verdict.out_trade_no})
    return _reply(channel, verdict)


# --- stray payments: money for an order that could no longer be paid, returned


def stray_refund_backoff(attempts: int) -> timedelta:
    """How long a stray payment waits after its `attempts`-th failed refund attempt before the next one."""
    return min(STRAY_REFUND_FIRST_RETRY * 2 ** max(attempts - 1, 0), STRAY_REFUND_MAX_BACKOFF)


def refund_stray_payment(db: Database, settings: PaymentSettings, tenant: Caller, stray_id: str,
                         attempts_seen: int, idle_before: datetime | None = None) -> str | None:
    """One refund attempt, claimed first (so one replica makes it); the status after it, None if not claimed."""
    with db.unit_of_work() as uow:
        repo = PaymentsRepository(uow, tenant)
        if not repo.claim_stray_refund(stray_id, attempts_seen, idle_before):
            return None
        stray = repo.stray_payment(stray_id)
        uow.commit()
    assert stray is not None
    try:
        # WeChat wants the total paid in that transaction: the stray payment's own amount.
        money_status = _refund_at_provider(db, settings, tenant, stray.channel, stray.order_id, stray.refund_no,
                                           stray.amount, stray.amount)
    except DomainError as error:
        return _stray_refund_failed(db, tenant, stray, f"{error.code}: {error.message}")
    with db.unit_of_work() as uow:
        finished = PaymentsRepository(uow, tenant).finish_stray_payment(stray_id, "refunded", None)
        if finished:
            orders = OrdersRepository(uow, tenant)
            status = orders.status_of(stray.order_id) or ""
            orders.add_history(stray.order_id, status, status, f"provider:{stray.channel}", "late_payment_refunded")
        record_refund_answer(uow, tenant, stray.refund_no, stray.order_id, money_status)
        uow.commit()
    if finished:
        metrics.STRAY_PAYMENTS.labels(stray.channel, "refunded").inc()
        log.info("stray payment refunded", extra={"order_id": stray.order_id, "stray_payment_id": stray_id,
                                                  "channel": stray.channel, "amount": stray.amount,
                                                  "money_status": money_status})
    return "refunded"


def _stray_refund_failed(db: Database, tenant: Caller, stray: Any, why: str) -> str:
    """Pending for the sweeper to retry, or `failed` once the attempts are used up (then a human must act)."""
    gave_up = stray.attempts >= MAX_STRAY_REFUND_ATTEMPTS
    extra = {"order_id": stray.order_id, "stray_payment_id": stray.id, "channel": stray.channel,
             "amount": stray.amount, "attempts": stray.attempts, "error": why}
    with db.unit_of_work() as uow:
        repo = PaymentsRepository(uow, tenant)
        if not gave_up:
            repo.note_stray_refund_error(stray.id, why)
            uow.commit()
            metrics.STRAY_PAYMENTS.labels(stray.channel, "retrying").inc()
            log.warning("refund of a stray payment failed; retrying later", extra=extra)
            return "pending"
        if repo.finish_stray_payment(stray.id, "failed", why[:200]):
            orders = OrdersRepository(uow, tenant)
            status = orders.status_of(stray.order_id) or ""
            orders.add_history(stray.order_id, status, status, f"provider:{stray.channel}",
                               "late_payment_refund_failed")
            uow.commit()
            metrics.STRAY_PAYMENTS.labels(stray.channel, "failed").inc()
            log.error("refund of a stray payment gave up: return the money by hand", extra=extra)
    return "failed"


def retry_stray_refunds(db: Database, settings: PaymentSettings) -> int:
    """One more refund attempt for every tenant's stray payment whose backoff has passed; how many got refunded."""
    now = db.clock()
    with db.unit_of_work() as uow:
        due = stray_refunds_due(uow, now - STRAY_REFUND_FIRST_RETRY)
    refunded = 0
    for row in due:
        idle_before = now - stray_refund_backoff(row.attempts)
        if row.updated_at >= idle_before:
            continue
        tenant = Caller(row.merchant_id, row.mode, staff_id=f"provider:{row.channel}", role="system")
        with context.bound(caller=tenant, request_id=context.new_request_id()):
            if refund_stray_payment(db, settings, tenant, row.id, row.attempts, idle_before) == "refunded":
                refunded += 1
    return refunded


# --- refunds still processing at the provider: queried with backoff until it gives their result


def refund_query_backoff(queries: int) -> timedelta:
    """How long a processing refund waits after its `queries`-th query (0: since the provider accepted it)."""
    return min(REFUND_QUERY_AFTER * 2 ** queries, REFUND_QUERY_MAX_BACKOFF)


def query_processing_refunds(db: Database, settings: PaymentSettings) -> int:
    """Ask the provider about every tenant's processing refund whose backoff has passed; how many got a result."""
    now = db.clock()
    with db.unit_of_work() as uow:
        due = refunds_awaiting_provider(uow, now - REFUND_QUERY_AFTER)
    settled = 0
    for money in due:
        idle_before = now - refund_query_backoff(money.queries)
        if money.checked_at is None or money.checked_at >= idle_before:
            continue
        tenant = Caller(money.merchant_id, money.mode, staff_id=f"provider:{money.channel}", role="system")
        with context.bound(caller=tenant, request_id=context.new_request_id()):
            if query_refund(db, settings, tenant, money, idle_before) not in (None, pch.REFUND_PROCESSING):
                settled += 1
    return settled


def query_refund(db: Database, settings: PaymentSettings, tenant: Caller, money: RefundMoney,
                 idle_before: datetime) -> str | None:
    """One query of a processing refund, claimed first (so one replica makes it); the money status it found,
    None if not claimed or the provider did not answer (the next sweep asks again, after the backoff)."""
    with db.unit_of_work() as uow:
        if not PaymentsRepository(uow, tenant).claim_refund_query(money, idle_before):
            return None
        uow.commit()
    extra = {"order_id": money.order_id, "refund_no": money.refund_no, "channel": money.channel,
             "queries": money.queries + 1}
    try:
        _, config = _configured(db, tenant, money.channel)
        if not isinstance(config, WechatPayConfig):
            return pch.REFUND_PROCESSING  # only WeChat answers processing; nothing to ask Alipay
        wechat_url, _ = _provider_urls(settings, tenant.mode)
        status = providers.wechat_refund_query(wechat_url, config, out_refund_no=money.refund_no, now=db.clock())
    except DomainError as error:
        log.warning("refund query failed; asking again later", extra={**extra, "error": error.code})
        return None
    if status == pch.REFUND_PROCESSING:
        return status
    with db.unit_of_work() as uow:
        moved = apply_refund_result(uow, tenant, money, status)
        uow.commit()
    if moved:
        metrics.REFUND_OUTCOMES.labels(money.channel, status).inc()
    return status


# --- channel test (模拟支付)


def run_channel_test(db: Database, settings: PaymentSettings, caller: Caller, channel: str) -> tuple[str, list[TestStep]]:
    """A 1-fen payment through the provider and back through the notification path, step by step."""
    channel = pch.require_provider_channel(channel)
    out_trade_no = ids.new_id(CHANNEL_TEST_PREFIX.rstrip("_"))
    steps: list[TestStep] = []
    try:
        account_id, config = _configured(db, caller, channel)
    except errors.PaymentChannelNotConfigured as error:
        return out_trade_no, [TestStep("configured", False, error.message)]
    steps.append(TestStep("configured", True, f"{channel} account {config.account_ref}"))
    if not settings.simulator_url:
        steps.append(TestStep("signed", False, "no payment simulator configured (WEIKA_PAYSIM_URL)"))
        return out_trade_no, steps
    try:
        prompt = _ask_provider(settings, caller, channel, account_id, config, out_trade_no, "Weika channel test",
                               CHANNEL_TEST_AMOUNT, db.clock())
    except (errors.PaymentProviderRefused, errors.PaymentProviderUnavailable) as error:
        steps.append(TestStep("signed", False, error.message))
        return out_trade_no, steps
    steps.append(TestStep("signed", True, "the provider accepted our signed 1-fen order and its answer's "
                          f"signature verified ({prompt.code_url or prompt.qr_code})"))
    try:
        delivery = providers.simulate_customer_payment(settings.simulator_url, channel, out_trade_no)
    except (errors.PaymentProviderRefused, errors.PaymentProviderUnavailable) as error:
        steps.append(TestStep("notified", False, error.message))
        return out_trade_no, steps
    deliveries = delivery.get("deliveries") or [{}]
    reached = all(d.get("delivered") for d in deliveries)
    steps.append(TestStep("notified", reached, f"notification sent to {notify_url(settings, channel, account_id)}: "
                          + ", ".join(f"HTTP {d.get('status')}" for d in deliveries)))
    with db.unit_of_work() as uow:
        seen = PaymentsRepository(uow, caller).notifications(out_trade_no)
    verified = [n for n in seen if n.verdict == pch.TEST_VERIFIED]
    if verified:
        steps.append(TestStep("verified", True, "signature, merchant and amount verified"))
    else:
        why = ", ".join(n.reason for n in seen) or "no notification arrived"
        steps.append(TestStep("verified", False, why))
    return out_trade_no, steps
