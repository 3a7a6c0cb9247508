"""Weika gateway: the REST face (/v1) that authenticates merchants and calls the services over gRPC."""
