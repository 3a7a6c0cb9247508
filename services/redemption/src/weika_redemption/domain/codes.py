"""Coupon codes: bearer secrets of 80 random bits, written in Crockford base32 with a mod-37 check symbol.

A code reads `XXXX-XXXX-XXXX-XXXX-C`: sixteen symbols from `secrets` and one check symbol, so a mistyped
code is refused before any lookup, and guessing one means finding 80 bits.
"""

from __future__ import annotations

import secrets

SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CHECK_SYMBOLS = SYMBOLS + "*~$=U"  # Crockford's extension for the check symbol (values 32..36)
BODY_LENGTH = 16
GROUP = 4
# What people and scanners confuse: I and L are read as one, O as zero; separators carry no meaning.
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None})


def check_symbol(body: str) -> str:
    """Crockford's check symbol: the body's value as a base-32 number, modulo 37."""
    value = 0
    for symbol in body:
        value = value * 32 + SYMBOLS.index(symbol)
    return CHECK_SYMBOLS[value % 37]


def new_code() -> str:
    """A fresh code, formatted for reading aloud."""
    body = "".join(secrets.choice(SYMBOLS) for _ in range(BODY_LENGTH))
    return format_code(body + check_symbol(body))


def normalize(raw: str) -> str:
    """What the counter typed or scanned, in canonical form: upper case, no spaces or hyphens, I/L→1, O→0."""
    return "".join(raw.split()).upper().translate(_CONFUSABLE)


def is_valid(normalized: str) -> bool:
    """True when a normalized code has the right length, alphabet and check symbol."""
    if len(normalized) != BODY_LENGTH + 1:
        return False
    body, check = normalized[:BODY_LENGTH], normalized[BODY_LENGTH]
    return all(symbol in SYMBOLS for symbol in body) and check == check_symbol(body)


def format_code(normalized: str) -> str:
    """`XXXX-XXXX-XXXX-XXXX-C` from the seventeen canonical symbols."""
    body = normalized[:BODY_LENGTH]
    groups = [body[i:i + GROUP] for i in range(0, BODY_LENGTH, GROUP)]
    return "-".join([*groups, normalized[BODY_LENGTH:]])


# --- QR payloads: `WK1.<coupon_id>.<code>.<signature>`, signed so an edited QR is refused.

QR_PREFIX = "WK1"
QR_PURPOSE = "coupon-qr"
QR_SIGNATURE_CHARS = 32  # 128 bits of the keyed HMAC-SHA256


def _qr_signature(coupon_id: str, normalized: str) -> str:
    from weika_kit import crypto  # the key material is the platform's (WEIKA_SECRET_KEY), shared by replicas

    return crypto.fingerprint(f"{QR_PREFIX}.{coupon_id}.{normalized}", purpose=QR_PURPOSE)[:QR_SIGNATURE_CHARS]


def qr_payload(coupon_id: str, code: str) -> str:
    """What a coupon's QR code encodes."""
    normalized = normalize(code)
    return f"{QR_PREFIX}.{coupon_id}.{normalized}.{_qr_signature(coupon_id, normalized)}"


def parse_qr(payload: str) -> tuple[str, str] | None:
    """(coupon_id, normalized code) of a genuine payload; None for anything edited, truncated or foreign."""
    import hmac

    parts = payload.strip().split(".")
    if len(parts) != 4 or parts[0] != QR_PREFIX:
        return None
    _, coupon_id, normalized, signature = parts
    if not hmac.compare_digest(signature.encode(), _qr_signature(coupon_id, normalized).encode()):
        return None
    return coupon_id, normalized
