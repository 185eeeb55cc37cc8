"""``python -m bench.l7.policy_cost``: what the waypoint's policy gates cost per request in
process, without sockets: the authorization gate (``AuthzGate.check``) over the benchmark's
20 AuthorizationPolicy rules (alone, and with the ``Call`` built per request as the waypoint
builds it) and the rate limit gate (``RateLimitGate.check``) over its rate
limit, both as ``python -m l7proxy --config`` wires them, for the measured request (best of 5
runs of 5,000 calls). ``--reference`` adds the decision alone, by the compiled matcher the
gate uses (``authz.compiled``) and by the reference evaluator (``authz.evaluate``). Where
``make bench-l7-policies`` finds Tulle's cost.

On a busy machine wall time scatters; ``--only NAME --calls N`` runs one of them N times
untimed, for instruction counts that do not: ``valgrind --tool=callgrind`` at N and at 0,
the difference over N (bench/results/authz-compiled-2026-12-06.md).

``miss``: ``call`` for requests that never repeat (``bench.l7.requestmix``: request n has n
in its path; 2 in 16 denied), so the gate's verdict memo never answers: what every request
costs when paths carry ids (``call`` repeats one request: the memo's hit path). The pool of
requests is built before the calls, the same at any ``--calls``, which stays within it.
``judge``: one of those requests judged again and again (``AuthzGate._judge``: no memo,
no ``Call`` built); ``noop``: the loop alone (subtract it)."""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable, Sequence

from authz import Peer, Request, compile_policies, evaluate
from bench.l7 import policy_bench, policyset, requestmix, table
from gatewayapi import BackendTarget, GatewayParent
from l7proxy.authz import AuthzGate, Call
from l7proxy.config import load_config_text, waypoint_config

POOL = 32768
"""Distinct requests for ``miss`` (8 memo fills: none is answered from the memo)."""
NAMES = {"gate": "AuthzGate.check", "call": "AuthzGate.check(Call(...))",
         "miss": "AuthzGate.check(Call(...)), requests that never repeat",
         "judge": "AuthzGate._judge (a request judged, no memo)",
         "noop": "nothing (the loop's own cost)",
         "ratelimit": "RateLimitGate.check",
         "compiled": "compiled matcher (authz.compiled)",
         "reference": "reference evaluator (authz.evaluate)"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.policy_cost", description=__doc__)
    parser.add_argument("--reference", action="store_true",
                        help="also time the decision alone, compiled and by the evaluator")
    parser.add_argument("--only", choices=sorted(NAMES),
                        help="run only this one, --calls times, untimed (for callgrind)")
    parser.add_argument("--calls", type=int, default=0)
    args = parser.parse_args(argv)
    if args.calls < 0 or args.calls > 1_000_000 or (
            args.only == "miss" and args.calls > POOL):
        parser.error(f"--calls: 0 to 1,000,000 ({POOL:,} for miss)")
    route_table = table.build()
    path, headers = route_table.request()
    text = policy_bench.tulle_config(route_table, listen="127.0.0.1:1", backend="127.0.0.1:2")
    loaded = load_config_text(text, "<bench>")
    config = waypoint_config(loaded)
    authorize, rate_limit = config.authorize, config.rate_limit
    assert authorize is not None and rate_limit is not None
    client = (policyset.CLIENT_IP, 40000)
    authority = f"127.0.0.1:{table.GATEWAY_PORT}"
    call = Call(client, GatewayParent(*table.GATEWAY, table.GATEWAY_PORT), [("127.0.0.1", 2)],
                "GET", authority, path, [(k.encode(), v.encode()) for k, v in headers])
    if authorize(call) is not None:
        raise SystemExit("policy_cost: the measured request is denied: not the benchmark's")
    backend = BackendTarget(table.NAMESPACE, table.SERVICE, table.SERVICE_PORT)
    endpoints = [("127.0.0.1", 2)]
    raw = call.headers
    pool = [(target, [(k.encode(), v.encode()) for k, v in fields]) for target, fields in (
        requestmix.nth(n, path, headers) for n in range(1, POOL + 1))]
    turn = iter(range(POOL))

    def miss() -> object:
        target, fields = pool[next(turn) % POOL]
        return authorize(Call(client, call.parent, endpoints, "GET", authority, target, fields))

    runs: list[tuple[str, Callable[[], object]]] = [
        ("AuthzGate.check", lambda: authorize(call)),
        # as the waypoint calls it: the Call built per request
        (NAMES["call"], lambda: authorize(Call(client, call.parent, endpoints, "GET", authority,
                                               path, raw))),
        ("RateLimitGate.check", lambda: rate_limit(client, backend)),
    ]
    if args.only == "miss":
        runs.append((NAMES["miss"], miss))
    if args.only in ("judge", "noop"):
        # one of the sequence's requests judged afresh each time (the miss path's work
        # without the memo or the Call); ``noop``: the loop alone, to subtract
        gate = getattr(authorize, "__self__", None)
        assert isinstance(gate, AuthzGate)
        judged = call._replace(target=pool[4][0], headers=pool[4][1])
        fields = gate._header_key(judged.headers)
        runs += [(NAMES["judge"], lambda: gate._judge(judged, fields)),
                 (NAMES["noop"], lambda: None)]
    if args.reference or args.only in ("compiled", "reference"):
        policies = sorted(loaded.authorization, key=lambda p: p.metadata.name)
        matcher = compile_policies(policies)
        pod = next(p for p in loaded.pods if p.status.pod_ip == policyset.CLIENT_IP)
        peer = Peer.of_pod(policyset.CLIENT_IP, loaded.trust_domain, pod.metadata.namespace,
                           pod.spec.service_account)
        request = Request(peer, "127.0.0.1", 2, authority, "GET", path,
                          Request.headers_of(list(headers)))
        assert matcher.evaluate(request) == evaluate(policies, request)
        runs += [(NAMES["compiled"], lambda: matcher.evaluate(request)),
                 (NAMES["reference"], lambda: evaluate(policies, request))]
    if args.only is not None:
        run = dict(runs)[NAMES[args.only]]
        for _ in range(args.calls):
            run()
        return 0
    for name, run in runs:
        best = min(timeit.repeat(run, number=5000, repeat=5)) / 5000
        print(f"{name}: {best * 1e6:.1f} us per request (best of 5 x 5,000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
