"""Weika catalog service: categories, products of three kinds, coupon rules and stock that never oversells."""
