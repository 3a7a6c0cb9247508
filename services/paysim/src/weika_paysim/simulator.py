"""The simulator's state: its platform keys, the merchants registered with it, and the trades placed.

Like the real providers, a merchant registers once (WeChat: mchid, appid, API certificate serial and
public key, API v3 key; Alipay: app_id and the app's public key) and gets the provider's public key to
verify what the provider sends. Trades live in memory: the simulator is a test double, not a ledger.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from weika_paysim import protocol


@dataclass
class WechatMerchant:
    mchid: str
    appid: str
    serial_no: str
    public_key: rsa.RSAPublicKey
    api_v3_key: str
    refund_answer: str = "SUCCESS"  # or PROCESSING: the refund completes when a test has it notified


@dataclass
class AlipayApp:
    app_id: str
    public_key: rsa.RSAPublicKey


@dataclass
class Trade:
    channel: str
    account: str  # mchid / app_id
    appid: str
    out_trade_no: str
    amount: int
    notify_url: str
    transaction_id: str
    prompt: str  # code_url / qr_code
    paid: bool = False
    refunds: dict[str, int] = field(default_factory=dict)  # out_refund_no -> amount
    refund_states: dict[str, str] = field(default_factory=dict)  # out_refund_no -> SUCCESS | PROCESSING | ...
    refund_notify_urls: dict[str, str] = field(default_factory=dict)  # out_refund_no -> notify_url (WeChat)

    def refund(self, out_refund_no: str, amount: int) -> str:
        """"ok" (or a replay of the same refund), else why it is refused."""
        if out_refund_no in self.refunds:
            return "ok" if self.refunds[out_refund_no] == amount else "refund_no_reused"
        if not self.paid:
            return "trade_not_paid"
        if amount <= 0 or sum(self.refunds.values()) + amount > self.amount:
            return "refund_exceeds_payment"
        self.refunds[out_refund_no] = amount
        return "ok"


@dataclass
class Simulator:
    wechat_platform_key: rsa.RSAPrivateKey
    wechat_platform_serial: str
    alipay_key: rsa.RSAPrivateKey
    wechat_merchants: dict[str, WechatMerchant] = field(default_factory=dict)
    alipay_apps: dict[str, AlipayApp] = field(default_factory=dict)
    trades: dict[tuple[str, str, str], Trade] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def generate(cls) -> Simulator:
        return cls(protocol.new_rsa_key(), "PUB_KEY_ID_" + secrets.token_hex(12).upper(), protocol.new_rsa_key())

    @classmethod
    def from_key_dir(cls, key_dir: Path) -> Simulator:
        """Keys kept across restarts, so merchants' configured platform keys stay valid."""
        key_dir.mkdir(parents=True, exist_ok=True)
        wechat, alipay, serial = key_dir / "wechat_platform.pem", key_dir / "alipay.pem", key_dir / "wechat_serial"
        if not (wechat.exists() and alipay.exists() and serial.exists()):
            fresh = cls.generate()
            wechat.write_text(protocol.private_pem(fresh.wechat_platform_key))
            alipay.write_text(protocol.private_pem(fresh.alipay_key))
            serial.write_text(fresh.wechat_platform_serial)
            for path in (wechat, alipay):
                path.chmod(0o600)
        return cls(protocol.load_private(wechat.read_text()), serial.read_text().strip(),
                   protocol.load_private(alipay.read_text()))

    def platform(self) -> dict[str, dict[str, str]]:
        return {"wechat": {"platform_serial_no": self.wechat_platform_serial,
                           "platform_public_key_pem": protocol.public_pem(self.wechat_platform_key)},
                "alipay": {"alipay_public_key_pem": protocol.public_pem(self.alipay_key)}}

    def trade(self, channel: str, account: str, out_trade_no: str) -> Trade | None:
        with self.lock:
            return self.trades.get((channel, account, out_trade_no))

    def find_trade(self, channel: str, out_trade_no: str) -> Trade | None:
        with self.lock:
            return next((t for (c, _, o), t in self.trades.items() if c == channel and o == out_trade_no), None)

    def trade_of_refund(self, channel: str, account: str, out_refund_no: str) -> Trade | None:
        with self.lock:
            return next((t for (c, a, _), t in self.trades.items()
                         if c == channel and a == account and out_refund_no in t.refunds), None)

    def place(self, trade: Trade) -> tuple[Trade, bool]:
        """The trade under (channel, account, out_trade_no); False when one with another amount exists."""
        key = (trade.channel, trade.account, trade.out_trade_no)
        with self.lock:
            existing = self.trades.get(key)
            if existing is None:
                self.trades[key] = trade
                return trade, True
            return existing, existing.amount == trade.amount
