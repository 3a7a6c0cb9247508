"""HTTP clients of the payment providers (or the payment simulator that plays them), in domain terms.

WeChat Pay API v3 Native: a signed `POST /v3/pay/transactions/native` answers a `code_url`; the answer's
own platform signature is verified before it is trusted. Alipay: a signed `alipay.trade.precreate` on the
gateway answers a `qr_code`, whose response signature is verified likewise. Refunds: WeChat's answer
SUCCESS or PROCESSING (then notified, or queried with GET .../refunds/{out_refund_no}); Alipay's is final. The simulator's extra
endpoint (`POST /sim/{channel}/pay`) makes the customer pay, which only a simulator can do.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests

from weika_orders.adapters import provider_crypto as pc
from weika_orders.domain import errors
from weika_orders.domain.payment_channels import (
    REFUND_SUCCEEDED,
    WECHAT_REFUND_STATUSES,
    AlipayConfig,
    WechatPayConfig,
)

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class ProviderPrompt:
    code_url: str = ""
    prepay_id: str = ""
    qr_code: str = ""


def _post(url: str, **kwargs: Any) -> requests.Response:
    try:
        return requests.post(url, timeout=TIMEOUT_S, **kwargs)
    except requests.RequestException as error:
        log.warning("payment provider unreachable", extra={"url": url, "error": str(error)})
        raise errors.PaymentProviderUnavailable("the payment provider did not answer; please retry",
                                                details={"provider_url": url}) from None


def wechat_native(base_url: str, config: WechatPayConfig, *, out_trade_no: str, description: str, amount: int,
                  notify_url: str, now: datetime) -> ProviderPrompt:
    """Place a Native order; the answer is trusted only when the platform's signature over it verifies."""
    path = "/v3/pay/transactions/native"
    body = json.dumps({"appid": config.appid, "mchid": config.mchid, "description": description[:127],
                       "out_trade_no": out_trade_no, "notify_url": notify_url,
                       "amount": {"total": amount, "currency": "CNY"}}, ensure_ascii=False).encode()
    timestamp, nonce = str(int(now.timestamp())), secrets.token_hex(16)
    authorization = pc.wechat_authorization(
        mchid=config.mchid, serial_no=config.merchant_serial_no,
        key=pc.signing_key(config.merchant_private_key_pem), method="POST", url_path=path, body=body,
        timestamp=timestamp, nonce=nonce)
    response = _post(base_url.rstrip("/") + path, data=body, headers={
        "Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json"})
    if response.status_code >= 500:
        raise errors.PaymentProviderUnavailable("WeChat Pay failed to answer; please retry",
                                                details={"provider_status": str(response.status_code)})
    if not _wechat_signed_by_platform(config, response):
        raise errors.PaymentProviderUnavailable("WeChat Pay's answer is not signed by the configured platform key",
                                                details={"channel": "wechat"})
    answer = response.json()
    if response.status_code != 200 or not answer.get("code_url"):
        raise errors.PaymentProviderRefused(f"WeChat Pay refused the order: {answer.get('message', '')}",
                                            details={"provider_code": str(answer.get("code", ""))})
    return ProviderPrompt(code_url=answer["code_url"], prepay_id=str(answer.get("prepay_id", "")))


def wechat_refund(base_url: str, config: WechatPayConfig, *, out_trade_no: str, out_refund_no: str, refund: int,
                  total: int, notify_url: str, now: datetime) -> str:
    """POST /v3/refund/domestic/refunds, idempotent per out_refund_no; accepted when SUCCESS or PROCESSING.

    The money status it answered: `succeeded`, or `processing` (the result is notified to notify_url later)."""
    path = "/v3/refund/domestic/refunds"
    body = json.dumps({"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "notify_url": notify_url,
                       "amount": {"refund": refund, "total": total, "currency": "CNY"}}).encode()
    response = _wechat_call(base_url, config, "POST", path, body, now)
    if response.status_code >= 500 or not _wechat_signed_by_platform(config, response):
        raise errors.PaymentProviderUnavailable("WeChat Pay did not confirm the refund; it will be retried",
                                                details={"channel": "wechat"})
    answer = response.json()
    if response.status_code != 200 or answer.get("status") not in ("SUCCESS", "PROCESSING"):
        raise errors.PaymentProviderRefused(f"WeChat Pay refused the refund: {answer.get('message', '')}",
                                            details={"provider_code": str(answer.get("code", ""))})
    return WECHAT_REFUND_STATUSES[answer["status"]]


def wechat_refund_query(base_url: str, config: WechatPayConfig, *, out_refund_no: str, now: datetime) -> str:
    """GET /v3/refund/domestic/refunds/{out_refund_no}: the refund's money status, from a platform-signed answer."""
    path = f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"
    response = _wechat_call(base_url, config, "GET", path, b"", now)
    if response.status_code >= 500 or not _wechat_signed_by_platform(config, response):
        raise errors.PaymentProviderUnavailable("WeChat Pay did not answer the refund query; it will be retried",
                                                details={"channel": "wechat"})
    answer = response.json()
    status = WECHAT_REFUND_STATUSES.get(str(answer.get("status", "")))
    if response.status_code != 200 or status is None:
        raise errors.PaymentProviderRefused(f"WeChat Pay refused the refund query: {answer.get('message', '')}",
                                            details={"provider_code": str(answer.get("code", ""))})
    return status


def _wechat_call(base_url: str, config: WechatPayConfig, method: str, path: str, body: bytes,
                 now: datetime) -> requests.Response:
    """A merchant API request signed with the merchant's key (WECHATPAY2-SHA256-RSA2048)."""
    timestamp, nonce = str(int(now.timestamp())), secrets.token_hex(16)
    authorization = pc.wechat_authorization(
        mchid=config.mchid, serial_no=config.merchant_serial_no, key=pc.signing_key(config.merchant_private_key_pem),
        method=method, url_path=path, body=body, timestamp=timestamp, nonce=nonce)
    headers = {"Authorization": authorization, "Accept": "application/json"}
    if method == "GET":
        try:
            return requests.get(base_url.rstrip("/") + path, headers=headers, timeout=TIMEOUT_S)
        except requests.RequestException as error:
            log.warning("payment provider unreachable", extra={"url": base_url, "error": str(error)})
            raise errors.PaymentProviderUnavailable("the payment provider did not answer; please retry",
                                                    details={"provider_url": base_url}) from None
    return _post(base_url.rstrip("/") + path, data=body, headers={**headers, "Content-Type": "application/json"})


def _wechat_signed_by_platform(config: WechatPayConfig, response: requests.Response) -> bool:
    headers = response.headers
    key, _ = pc.load_public_key(config.platform_public_key_pem)
    message = pc.wechat_response_message(headers.get("Wechatpay-Timestamp", ""), headers.get("Wechatpay-Nonce", ""),
                                         response.content)
    return pc.rsa_sha256_verify(key, message, headers.get("Wechatpay-Signature", ""))


def alipay_precreate(gateway_url: str, config: AlipayConfig, *, out_trade_no: str, subject: str, amount: int,
                     notify_url: str, now: datetime) -> ProviderPrompt:
    """alipay.trade.precreate (当面付 QR): the answer is trusted only when Alipay's signature over it verifies."""
    params = {
        "app_id": config.app_id, "method": "alipay.trade.precreate", "format": "JSON", "charset": "utf-8",
        "sign_type": "RSA2", "timestamp": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0", "notify_url": notify_url,
        "biz_content": json.dumps({"out_trade_no": out_trade_no, "total_amount": pc.yuan(amount),
                                   "subject": subject[:256]}, ensure_ascii=False, separators=(",", ":")),
    }
    params["sign"] = pc.alipay_sign(pc.signing_key(config.app_private_key_pem), params)
    response = _post(gateway_url, data=params)
    if response.status_code != 200:
        raise errors.PaymentProviderUnavailable("Alipay failed to answer; please retry",
                                                details={"provider_status": str(response.status_code)})
    content = response.text
    key, _ = pc.load_public_key(config.alipay_public_key_pem)
    signed_part, signature = _alipay_response_parts(content, "alipay_trade_precreate_response")
    if signed_part is None or not pc.rsa_sha256_verify(key, signed_part.encode(), signature):
        raise errors.PaymentProviderUnavailable("Alipay's answer is not signed by the configured Alipay public key",
                                                details={"channel": "alipay"})
    answer = json.loads(signed_part)
    if answer.get("code") != "10000" or not answer.get("qr_code"):
        raise errors.PaymentProviderRefused(f"Alipay refused the order: {answer.get('sub_msg') or answer.get('msg')}",
                                            details={"provider_code": str(answer.get("sub_code") or answer.get("code"))})
    return ProviderPrompt(qr_code=answer["qr_code"])


def alipay_refund(gateway_url: str, config: AlipayConfig, *, out_trade_no: str, out_request_no: str, refund: int,
                  now: datetime) -> str:
    """alipay.trade.refund, idempotent per out_request_no; accepted when code 10000, and then the money is
    back (Alipay refunds synchronously): the money status `succeeded`."""
    params = {
        "app_id": config.app_id, "method": "alipay.trade.refund", "format": "JSON", "charset": "utf-8",
        "sign_type": "RSA2", "timestamp": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
        "biz_content": json.dumps({"out_trade_no": out_trade_no, "refund_amount": pc.yuan(refund),
                                   "out_request_no": out_request_no}, separators=(",", ":")),
    }
    params["sign"] = pc.alipay_sign(pc.signing_key(config.app_private_key_pem), params)
    response = _post(gateway_url, data=params)
    key, _ = pc.load_public_key(config.alipay_public_key_pem)
    signed_part, signature = _alipay_response_parts(response.text, "alipay_trade_refund_response")
    if response.status_code != 200 or signed_part is None or \
            not pc.rsa_sha256_verify(key, signed_part.encode(), signature):
        raise errors.PaymentProviderUnavailable("Alipay did not confirm the refund; it will be retried",
                                                details={"channel": "alipay"})
    answer = json.loads(signed_part)
    if answer.get("code") != "10000":
        raise errors.PaymentProviderRefused(f"Alipay refused the refund: {answer.get('sub_msg') or answer.get('msg')}",
                                            details={"provider_code": str(answer.get("sub_code") or answer.get("code"))})
    return REFUND_SUCCEEDED


def _alipay_response_parts(content: str, node: str) -> tuple[str | None, str]:
    """Alipay signs the exact text of the response node, so it is cut from the raw JSON, not re-serialised."""
    try:
        document = json.loads(content)
        marker = f'"{node}":'
        start = content.index(marker) + len(marker)
        decoder = json.JSONDecoder()
        while content[start] in " \t\r\n":
            start += 1
        _, end = decoder.raw_decode(content, start)
        return content[start:end], str(document.get("sign", ""))
    except (ValueError, IndexError):
        return None, ""


def simulate_customer_payment(simulator_url: str, channel: str, out_trade_no: str) -> dict[str, Any]:
    """Ask the simulator to have the customer pay: it sends the notification and tells how it was answered."""
    response = _post(f"{simulator_url.rstrip('/')}/sim/{channel}/pay", json={"out_trade_no": out_trade_no})
    if response.status_code != 200:
        raise errors.PaymentProviderRefused(f"the payment simulator refused: {response.text[:200]}",
                                            details={"provider_status": str(response.status_code)})
    return dict(response.json())
