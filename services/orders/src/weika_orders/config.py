"""The orders service's own settings, from environment variables with embedded defaults."""

from __future__ import annotations

from dataclasses import dataclass

from weika_kit.config import env


def timer_interval_s() -> float:
    """Seconds between two runs of the order timers (WEIKA_ORDERS_TIMER_INTERVAL_S, default 15); tests shorten it."""
    return float(env("WEIKA_ORDERS_TIMER_INTERVAL_S", "15") or 15)


@dataclass(frozen=True)
class PaymentSettings:
    """Where the payment providers are, and where they must send notifications.

    simulator_url: the payment simulator (weika-paysim) that plays WeChat Pay and Alipay. Test mode pays
    only through it; when it is set, live mode uses it too (there is no reaching the real providers here).
    notify_base_url: the gateway as the providers reach it; notify URLs are `<base>/v1/payments/<channel>/notify`.
    """

    simulator_url: str | None
    notify_base_url: str
    wechatpay_url: str = "https://api.mch.weixin.qq.com"
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"

    @classmethod
    def from_env(cls) -> PaymentSettings:
        return cls(simulator_url=env("WEIKA_PAYSIM_URL") or None,
                   notify_base_url=env("WEIKA_PAYMENT_NOTIFY_BASE_URL", "http://127.0.0.1:8080") or "",
                   wechatpay_url=env("WEIKA_WECHATPAY_API_URL", cls.wechatpay_url) or cls.wechatpay_url,
                   alipay_gateway_url=env("WEIKA_ALIPAY_GATEWAY_URL", cls.alipay_gateway_url)
                   or cls.alipay_gateway_url)
