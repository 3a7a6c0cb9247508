"""Identifiers: a short type prefix and 128 random bits, so an id says what it names and cannot be guessed."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def new_id(prefix: str) -> str:
    number = secrets.randbits(128)
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(chars)) or '0'}"
