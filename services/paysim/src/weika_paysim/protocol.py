"""The provider's side of the signature schemes, written from the providers' documentation.

Deliberately independent of the orders service's implementation: the simulator and the merchant side
check each other, so a mistake in one canonical string shows up as a failed verification.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("an RSA public key is required")
    return key


def load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("an RSA private key is required")
    return key


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# --- WeChat Pay API v3


def parse_authorization(header: str) -> dict[str, str] | None:
    """`WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."`."""
    schema, _, params = header.partition(" ")
    if schema != "WECHATPAY2-SHA256-RSA2048":
        return None
    return dict(_AUTH_PARAM.findall(params))


def merchant_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return b"\n".join([method.encode(), path.encode(), timestamp.encode(), nonce.encode(), body]) + b"\n"


def platform_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return b"\n".join([timestamp.encode(), nonce.encode(), body]) + b"\n"


def platform_headers(key: rsa.RSAPrivateKey, serial: str, body: bytes, timestamp: int) -> dict[str, str]:
    nonce = secrets.token_hex(16)
    return {"Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(key, platform_message(str(timestamp), nonce, body)),
            "Wechatpay-Serial": serial}


def seal_resource(api_v3_key: str, plaintext: dict[str, Any], associated_data: str = "transaction") -> dict[str, str]:
    nonce = secrets.token_urlsafe(9)[:12]
    sealed = AESGCM(api_v3_key.encode()).encrypt(nonce.encode(), json.dumps(plaintext).encode(),
                                                  associated_data.encode())
    return {"original_type": associated_data, "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(), "associated_data": associated_data, "nonce": nonce}


# --- Alipay RSA2


def alipay_content(params: dict[str, str]) -> bytes:
    keys = sorted(k for k, v in params.items() if k not in ("sign", "sign_type") and v)
    return "&".join(f"{k}={params[k]}" for k in keys).encode()


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"
