"""``python -m bench.l7.policy_cost``: what the waypoint's policy gates cost per request in
process, without sockets: ``AuthzGate.check`` over the benchmark's 20 AuthorizationPolicy
rules and ``RateLimitGate.check`` over its rate limit, for the measured request (best of 5
runs of 5,000 calls). Where ``make bench-l7-policies`` finds Tulle's cost."""

from __future__ import annotations

import timeit

from bench.l7 import policy_bench, table
from bench.l7.policy_waypoint import gates
from gatewayapi import BackendTarget, GatewayParent
from l7proxy.authz import Call


def main() -> int:
    route_table = table.build()
    path, headers = route_table.request()
    text = policy_bench.tulle_config(route_table, listen="127.0.0.1:1", backend="127.0.0.1:2")
    authz, limits = gates(text, "<bench>")
    client = ("127.0.0.1", 40000)
    call = Call(client, GatewayParent(*table.GATEWAY, table.GATEWAY_PORT), [("127.0.0.1", 2)],
                "GET", f"127.0.0.1:{table.GATEWAY_PORT}", path,
                [(k.encode(), v.encode()) for k, v in headers])
    if authz.check(call) is not None:
        raise SystemExit("policy_cost: the measured request is denied: not the benchmark's")
    backend = BackendTarget(table.NAMESPACE, table.SERVICE, table.SERVICE_PORT)
    for name, run in (("AuthzGate.check", lambda: authz.check(call)),
                      ("RateLimitGate.check", lambda: limits.check(client, backend))):
        best = min(timeit.repeat(run, number=5000, repeat=5)) / 5000
        print(f"{name}: {best * 1e6:.1f} us per request (best of 5 x 5,000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
