"""The gateway's settings, read from environment variables with embedded defaults."""

from __future__ import annotations

from dataclasses import dataclass

from weika_kit.config import DEFAULT_GATEWAY_PORT, env, env_int

MAX_BODY_BYTES = 1024 * 1024
# Each service gets this long to answer the health check; they are asked concurrently.
HEALTH_CHECK_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class GatewaySettings:
    """What the gateway process reads at start-up (the database URL comes from weika_kit.config)."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_GATEWAY_PORT
    # The platform operator's bearer token; None disables the operator endpoints (503).
    admin_token: str | None = None
    log_level: str = "INFO"
    grpc_timeout_s: float = 10.0
    # Unknown coupon codes allowed per scope (store, operator, client address) per window before 429.
    redeem_failure_limit: int = 10
    redeem_failure_window_s: int = 300
    # Proxies in front of the gateway whose X-Forwarded-For to trust (an ingress: 1). 0 trusts none, so a
    # client cannot spoof its address (the redemption limiter keys one scope on it).
    trusted_proxies: int = 0

    @classmethod
    def from_env(cls) -> GatewaySettings:
        return cls(
            host=env("WEIKA_GATEWAY_HOST", "0.0.0.0") or "0.0.0.0",
            port=env_int("WEIKA_GATEWAY_PORT", DEFAULT_GATEWAY_PORT),
            admin_token=env("WEIKA_ADMIN_TOKEN"),
            log_level=env("WEIKA_LOG_LEVEL", "INFO") or "INFO",
            grpc_timeout_s=float(env_int("WEIKA_GATEWAY_GRPC_TIMEOUT_S", 10)),
            redeem_failure_limit=env_int("WEIKA_REDEEM_FAILURE_LIMIT", 10),
            redeem_failure_window_s=env_int("WEIKA_REDEEM_FAILURE_WINDOW_S", 300),
            trusted_proxies=env_int("WEIKA_GATEWAY_TRUSTED_PROXIES", 0),
        )
