"""Weika marketing service: campaigns, discount stacking and price quotes that explain every discount."""
