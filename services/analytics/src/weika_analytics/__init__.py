"""Weika analytics service: read models built only from events, and the reports computed from them."""
