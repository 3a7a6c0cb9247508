"""Payment channel settings (WeChat Pay API v3, Alipay) and the verdicts on provider notifications.

Plain Python: the shapes of a merchant's channel configuration, their format checks, and how they are
shown back (ids in clear, secrets masked). Key material is parsed by adapters/provider_crypto.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from weika_orders.domain import errors

WECHAT = "wechat"
ALIPAY = "alipay"
PROVIDER_CHANNELS = (WECHAT, ALIPAY)
CHANNEL_TEST_PREFIX = "pct_"  # out_trade_no of a channel test (a 1-fen payment with no order behind it)
CHANNEL_TEST_AMOUNT = 1

# Notification verdicts, recorded in payment_notifications.
PAID = "paid"  # verified, and it paid the order (exactly once)
DUPLICATE = "duplicate"  # verified, the order was already paid by this channel: nothing changes
IGNORED = "ignored"  # verified, but not a success (e.g. a late WAIT_BUYER_PAY after the payment)
NOT_PAYABLE = "not_payable"  # verified success for an order that is cancelled or was paid another way
TEST_VERIFIED = "test_verified"  # verified notification of a channel test
REJECTED = "rejected"  # failed verification: forged, tampered, stale, wrong merchant, wrong amount
REFUND_SETTLED = "refund_settled"  # verified refund result that moved one of our refunds' money status

# Where the provider says a refund's money is (refunds.provider_status and stray_payments.provider_status).
REFUND_PROCESSING = "processing"  # accepted; the result comes by notification or by querying
REFUND_SUCCEEDED = "succeeded"  # the money is back with the customer
REFUND_ABNORMAL = "abnormal"  # the provider could not return it (e.g. the card was closed): the merchant must act
REFUND_CLOSED = "closed"  # the provider closed the refund without returning the money: the merchant must act
WECHAT_REFUND_STATUSES = {"PROCESSING": REFUND_PROCESSING, "SUCCESS": REFUND_SUCCEEDED,
                          "ABNORMAL": REFUND_ABNORMAL, "CLOSED": REFUND_CLOSED}
REFUND_HISTORY_REASONS = {REFUND_SUCCEEDED: "refund_money_returned", REFUND_ABNORMAL: "refund_abnormal",
                          REFUND_CLOSED: "refund_closed"}


def refund_status_may_become(new: str) -> tuple[str | None, ...]:
    """The money statuses a refund may move to `new` from: a result only replaces no answer, processing, or
    (for success or closing, after the merchant handled it) abnormal; succeeded and closed are final."""
    if new == REFUND_PROCESSING:
        return (None,)
    return (None, REFUND_PROCESSING) if new == REFUND_ABNORMAL else (None, REFUND_PROCESSING, REFUND_ABNORMAL)

_MCHID = re.compile(r"^[0-9]{6,32}$")
_APPID = re.compile(r"^[A-Za-z0-9_]{4,32}$")
_SERIAL = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ALIPAY_APP_ID = re.compile(r"^[0-9]{8,32}$")
MAX_PEM = 8192


def _field(value: str, name: str, pattern: re.Pattern[str], what: str) -> str:
    value = value.strip()
    if not pattern.match(value):
        raise errors.InvalidPaymentChannelConfig(f"{name} must be {what}", details={"field": name})
    return value


def _pem(value: str, name: str) -> str:
    value = value.strip()
    if not value.startswith("-----BEGIN") or len(value) > MAX_PEM:
        raise errors.InvalidPaymentChannelConfig(f"{name} must be a PEM block (-----BEGIN ...)",
                                                 details={"field": name})
    return value + "\n"


def mask_secret(value: str) -> str:
    return "****" + value[-4:] if len(value) > 8 else "****"


@dataclass(frozen=True)
class WechatPayConfig:
    mchid: str
    appid: str
    merchant_serial_no: str
    merchant_private_key_pem: str
    api_v3_key: str
    platform_public_key_pem: str
    platform_serial_no: str

    @classmethod
    def parse(cls, *, mchid: str, appid: str, merchant_serial_no: str, merchant_private_key_pem: str,
              api_v3_key: str, platform_public_key_pem: str, platform_serial_no: str) -> WechatPayConfig:
        if len(api_v3_key.encode()) != 32:
            raise errors.InvalidPaymentChannelConfig("api_v3_key must be exactly 32 bytes (as set in the WeChat "
                                                     "Pay merchant console)", details={"field": "api_v3_key"})
        serial = platform_serial_no.strip()
        return cls(
            mchid=_field(mchid, "mchid", _MCHID, "the WeChat Pay merchant id (digits)"),
            appid=_field(appid, "appid", _APPID, "the app id bound to the merchant (e.g. wx8888888888888888)"),
            merchant_serial_no=_field(merchant_serial_no, "merchant_serial_no", _SERIAL,
                                      "the serial number of the merchant API certificate"),
            merchant_private_key_pem=_pem(merchant_private_key_pem, "merchant_private_key_pem"),
            api_v3_key=api_v3_key,
            platform_public_key_pem=_pem(platform_public_key_pem, "platform_public_key_pem"),
            platform_serial_no=_field(serial, "platform_serial_no", _SERIAL,
                                      "the platform certificate serial or public key id") if serial else "")

    @property
    def account_ref(self) -> str:
        return self.mchid

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> WechatPayConfig:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key_pem: str
    alipay_public_key_pem: str

    @classmethod
    def parse(cls, *, app_id: str, app_private_key_pem: str, alipay_public_key_pem: str) -> AlipayConfig:
        return cls(app_id=_field(app_id, "app_id", _ALIPAY_APP_ID, "the Alipay app id (digits)"),
                   app_private_key_pem=_pem(app_private_key_pem, "app_private_key_pem"),
                   alipay_public_key_pem=_pem(alipay_public_key_pem, "alipay_public_key_pem"))

    @property
    def account_ref(self) -> str:
        return self.app_id

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> AlipayConfig:
        return cls(**json.loads(raw))


ChannelConfig = WechatPayConfig | AlipayConfig


def config_from_json(channel: str, raw: str) -> ChannelConfig:
    return WechatPayConfig.from_json(raw) if channel == WECHAT else AlipayConfig.from_json(raw)


def require_provider_channel(channel: str) -> str:
    channel = channel.strip()
    if channel not in PROVIDER_CHANNELS:
        raise errors.UnsupportedPaymentChannel(
            f"payment channel {channel!r} cannot be configured: use one of {', '.join(PROVIDER_CHANNELS)}",
            details={"channel": channel})
    return channel


@dataclass(frozen=True)
class Verdict:
    """What a notification came to: its verdict, a reason code, and what it said (once decoded)."""

    verdict: str
    reason: str
    out_trade_no: str = ""
    notification_id: str = ""
    transaction_id: str = ""
    amount: int | None = None
    refund_no: str = ""  # a refund notification's out_refund_no
    refund_status: str = ""  # a refund notification's result, as a money status (REFUND_SUCCEEDED, ...)

    @property
    def acknowledged(self) -> bool:
        """The provider is told "received" unless verification failed (it then retries, as it should)."""
        return self.verdict != REJECTED
