"""Coupon codes: format, Crockford check symbol, normalization of what a counter types."""

from __future__ import annotations

import re

import pytest

from weika_redemption.domain import codes

FORMAT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}-[0-9A-HJKMNP-TV-Z*~$=U]$")


def test_check_symbol_is_the_base32_value_modulo_37():
    # "16J" is 1*32*32 + 6*32 + 18 = 1234 in Crockford base32; 1234 mod 37 = 13 -> "D".
    assert codes.check_symbol("16J") == "D"
    # Remainders 32..36 use Crockford's extra check symbols: "10" is 32 -> "*", "14" is 36 -> "U".
    assert codes.check_symbol("10") == "*"
    assert codes.check_symbol("14") == "U"


def test_new_codes_are_formatted_for_reading_aloud_and_carry_a_correct_check_symbol():
    for _ in range(200):
        code = codes.new_code()
        assert FORMAT.match(code), code
        normalized = codes.normalize(code)
        assert codes.check_symbol(normalized[:16]) == normalized[16]
        assert codes.is_valid(normalized)


def test_new_codes_do_not_repeat():
    assert len({codes.new_code() for _ in range(2000)}) == 2000


def test_typed_code_is_normalized_case_spaces_hyphens_and_confusable_letters():
    code = codes.new_code()
    typed = " " + code.lower().replace("-", " ") + "\n"
    assert codes.normalize(typed) == code.replace("-", "")
    assert codes.normalize("il0o-IL") == "110011"


def test_every_single_symbol_substitution_is_caught_by_the_check_symbol():
    normalized = codes.normalize(codes.new_code())
    for position in range(16):
        for symbol in codes.SYMBOLS:
            if symbol == normalized[position]:
                continue
            mistyped = normalized[:position] + symbol + normalized[position + 1:]
            assert not codes.is_valid(mistyped), (position, symbol)
    for check in codes.CHECK_SYMBOLS.replace(normalized[16], ""):
        assert not codes.is_valid(normalized[:16] + check)


def test_swapping_two_adjacent_symbols_is_caught():
    normalized = codes.normalize(codes.new_code())
    for i in range(15):
        if normalized[i] != normalized[i + 1]:
            swapped = normalized[:i] + normalized[i + 1] + normalized[i] + normalized[i + 2:]
            assert not codes.is_valid(swapped)


@pytest.mark.parametrize("raw", ["", "ABCD", "U" * 17, "0000-0000-0000-0000", "0000-0000-0000-0000-00"])
def test_malformed_codes_are_not_valid(raw):
    assert not codes.is_valid(codes.normalize(raw))
