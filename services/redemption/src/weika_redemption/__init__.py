"""Weika redemption service: coupons issued for paid orders, their secret codes, and redemption exactly once."""
