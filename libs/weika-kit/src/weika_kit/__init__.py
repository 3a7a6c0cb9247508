"""Weika's shared service kit: every service gets config, data, gRPC, events, logs and metrics from here."""
