"""Weika payment simulator: the provider's side of WeChat Pay API v3 and Alipay, for tests and test mode."""
