"""Secrets at rest: authenticated encryption (Fernet) and keyed fingerprints (HMAC-SHA256) for lookups.

The key comes from WEIKA_SECRET_KEY (a Fernet key, urlsafe base64 of 32 bytes); when unset, the embedded
default generates one once under var/ and every local process shares it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

from cryptography.fernet import Fernet, InvalidToken

from weika_kit.config import env, var_dir

__all__ = ["InvalidToken", "decrypt", "encrypt", "fingerprint"]


@functools.cache
def _key() -> bytes:
    configured = env("WEIKA_SECRET_KEY")
    if configured:
        return configured.encode()
    path = var_dir() / "secret.key"
    if not path.exists():
        candidate = Fernet.generate_key()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(candidate)
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first process to link wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


def encrypt(plaintext: str) -> str:
    return Fernet(_key()).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return Fernet(_key()).decrypt(token.encode()).decode()


def fingerprint(value: str, *, purpose: str) -> str:
    """A keyed hash to look a secret up by (same value and purpose -> same fingerprint), never reversible."""
    mac_key = hashlib.sha256(base64.urlsafe_b64decode(_key()) + purpose.encode()).digest()
    return hmac.new(mac_key, value.encode(), hashlib.sha256).hexdigest()
