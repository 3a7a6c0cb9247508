"""The payment providers' signature schemes: WeChat Pay API v3 (RSA-SHA256, AES-256-GCM) and Alipay RSA2.

Pure functions over bytes and keys, so the verifying side (notifications) and the signing side (our
requests to the provider) share one implementation of each canonical string.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from decimal import Decimal, InvalidOperation

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

WECHATPAY_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MIN_RSA_BITS = 2048


class UnusableKey(ValueError):
    """A PEM that is not a usable RSA key (or certificate)."""


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse and fully check a private key (slow: ~0.1 s for RSA); done once, when the merchant configures it."""
    return _private_key(pem, check=True)


@functools.lru_cache(maxsize=256)
def signing_key(pem: str) -> rsa.RSAPrivateKey:
    """A private key already checked when configured (see load_private_key), parsed once per process."""
    return _private_key(pem, check=False)


def _private_key(pem: str, *, check: bool) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None,
                                                 unsafe_skip_rsa_key_validation=not check)
    except (ValueError, TypeError) as error:
        raise UnusableKey("not a PEM private key without a passphrase") from error
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise UnusableKey(f"must be an RSA key of at least {MIN_RSA_BITS} bits")
    return key


def load_public_key(pem: str) -> tuple[rsa.RSAPublicKey, str | None]:
    """A public key from a PEM public key or certificate; the certificate's serial (hex, upper) when it is one."""
    data = pem.encode()
    serial: str | None = None
    try:
        if b"CERTIFICATE" in data:
            cert = x509.load_pem_x509_certificate(data)
            key = cert.public_key()
            serial = format(cert.serial_number, "X")
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise UnusableKey("not a PEM public key or certificate") from error
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise UnusableKey(f"must be an RSA key of at least {MIN_RSA_BITS} bits")
    return key, serial


def public_pem_of(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_sha256_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_sha256_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- WeChat Pay API v3


def wechat_request_message(method: str, url_path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: METHOD, path with query, timestamp, nonce, body, each line ended by \\n."""
    return f"{method}\n{url_path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def wechat_response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the platform signs in responses and notifications: timestamp, nonce, body, each ended by \\n."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def wechat_authorization(*, mchid: str, serial_no: str, key: rsa.RSAPrivateKey, method: str, url_path: str,
                         body: bytes, timestamp: str, nonce: str) -> str:
    signature = rsa_sha256_sign(key, wechat_request_message(method, url_path, timestamp, nonce, body))
    return (f'{WECHATPAY_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def wechat_decrypt_resource(api_v3_key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """AEAD_AES_256_GCM with the API v3 key; raises ValueError when it was not sealed with this key and data."""
    try:
        ciphertext = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(api_v3_key.encode()).decrypt(nonce.encode(), ciphertext, associated_data.encode())
    except (InvalidTag, binascii.Error, ValueError) as error:
        raise ValueError("resource cannot be decrypted") from error


# --- Alipay (RSA2)


def alipay_sign_content(params: dict[str, str]) -> bytes:
    """Every parameter but sign and sign_type, empty ones left out, sorted by name, `k=v` joined by `&`."""
    pairs = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type") and v != "")
    return "&".join(f"{k}={v}" for k, v in pairs).encode()


def alipay_sign(key: rsa.RSAPrivateKey, params: dict[str, str]) -> str:
    return rsa_sha256_sign(key, alipay_sign_content(params))


def alipay_verify(key: rsa.RSAPublicKey, params: dict[str, str]) -> bool:
    return rsa_sha256_verify(key, alipay_sign_content(params), params.get("sign", ""))


def yuan(fen: int) -> str:
    """Alipay amounts are yuan with two decimals."""
    return f"{fen // 100}.{fen % 100:02d}"


def fen_of_yuan(text: str) -> int | None:
    """Exact fen of a yuan amount such as "12.30"; None when it is not one."""
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    fen = value * 100
    if not value.is_finite() or fen != fen.to_integral_value() or value < 0:
        return None
    return int(fen)


def key_fingerprint(pem: str) -> str:
    """How a key is shown back: its type, size and the start of the SHA-256 of its public part."""
    if "PRIVATE KEY" in pem:
        public = signing_key(pem).public_key()
    else:
        public, _ = load_public_key(pem)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"RSA-{public.key_size} sha256:{hashlib.sha256(der).hexdigest()[:16]}"
