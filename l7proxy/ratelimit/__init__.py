"""Local rate limiting in the waypoint (HTTPLocalRateLimitPolicy): ``limiter`` (GCRA, pure),
``gate`` (policies and caller identity to buckets; the 429 answer). See README.md."""

from l7proxy.ratelimit.gate import (
    RATE_LIMITED_BODY,
    RATE_LIMITED_DROP,
    Limited,
    RateLimitGate,
    plans,
)
from l7proxy.ratelimit.limiter import Limiter, Verdict

__all__ = [
    "RATE_LIMITED_BODY",
    "RATE_LIMITED_DROP",
    "Limited",
    "Limiter",
    "RateLimitGate",
    "Verdict",
    "plans",
]
