"""``python -m bench.l7.policy_waypoint --config FILE ...``: the waypoint of ``python -m
l7proxy`` with the config file's AuthorizationPolicies and HTTPLocalRateLimitPolicy enforced.

``l7proxy``'s file loader (``l7proxy.config.load_config_text``) reads routes, Services and
BackendTrafficPolicies, but leaves ``authorize`` and ``rate_limit`` unset: in a cluster the
node waypoint (``l7proxy/node.py``) fills them from its watch. This runner fills them the
same way from the file: ``AuthzGate`` over the file's AuthorizationPolicies and Pods (the
caller's identity is the pod at its address), ``RateLimitGate`` over its
HTTPLocalRateLimitPolicies and Services, the caller's identity as authz derives it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from agent.model.core import Pod, Service
from agent.model.documents import load_documents
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from l7proxy.authz import AuthzGate
from l7proxy.config import CONFIG_KIND, load_config_text, parse_address, waypoint_config
from l7proxy.ratelimit import RateLimitGate
from l7proxy.server import run_workers

TRUST_DOMAIN = "cluster.local"


def gates(text: str, source: str) -> tuple[AuthzGate, RateLimitGate]:
    """The authorization and rate limit gates of a config file's objects."""
    objects = [from_dict(d) for d in load_documents(text, source) if d.get("kind") != CONFIG_KIND]
    authz = AuthzGate(TRUST_DOMAIN)
    authz.swap([o for o in objects if isinstance(o, AuthorizationPolicy)],
               [o for o in objects if isinstance(o, Pod)])
    limits = RateLimitGate(authz.peer)
    limits.swap([o for o in objects if isinstance(o, HTTPLocalRateLimitPolicy)],
                [o for o in objects if isinstance(o, Service)])
    return authz, limits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.policy_waypoint",
                                     description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--metrics", default=None)
    parser.add_argument("--flows", default="off")
    args = parser.parse_args(argv)
    try:
        text = Path(args.config).read_text()
        loaded = load_config_text(text, args.config)
        authz, limits = gates(text, args.config)
        listen = [parse_address(a) for a in args.listen]
        metrics = parse_address(args.metrics) if args.metrics else None
    except (OSError, ValueError) as exc:
        print(f"policy waypoint: {exc}", file=sys.stderr)
        return 2
    config = waypoint_config(loaded, listen=listen, metrics=metrics)
    config.authorize = authz.check
    config.rate_limit = limits.check
    print(f"policy waypoint: {len(authz.policies)} AuthorizationPolicies, "
          f"{len(loaded.backend_params)} BackendTrafficPolicies", file=sys.stderr, flush=True)
    return run_workers(config, args.workers, "auto", flows=args.flows)


if __name__ == "__main__":
    raise SystemExit(main())
