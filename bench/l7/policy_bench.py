"""``python -m bench.l7.policy_bench`` (``make bench-l7-policies``): issue 14's benchmark.
Tulle's waypoint and Envoy, each with the policies off and on, in one run: the 50-rule
table of ``make bench-l7`` plus 20 AuthorizationPolicy rules, a rate limit never reached and
outlier detection (``bench.l7.policyset``; Envoy's RBAC, local_ratelimit and
outlier_detection from the same objects: ``bench.l7.envoy_policy``).

Same layout as ``make bench-l7``: each proxy alone on the peer core, wrk/nginx/the flow
drain on the load core, the same variants (Tulle: metrics and flows to a drain; Envoy:
stats and a JSON access log). Before measuring, a preflight sends requests the policies
must refuse to all four peers: 403 from both with the policies on, 200 with them off,
or the run stops (a comparison where one side does not enforce is not one).
Results: ``bench/results/l7-policies-<date>.md`` and ``.json``.

``--requests varying`` (the default): request n carries n in its path, so no request repeats
and every one is judged (``bench.l7.requestmix``; 12.5% denied with the policies on).
``--requests repeated``: the route table's one request on every connection, as before: the
waypoint's verdict memo answers all but the first (results tagged ``policies-repeated``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.convert import from_dict
from agent.model.core import Pod, Service
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from bench.l7 import cli, envoy_policy, peers, policyset, requestmix, runinfo, table
from bench.l7.peers import HOST, BenchError, Peer
from bench.l7.policy_report import STATES, Check, PolicyResult, Row, markdown
from l7proxy.resilience.params import params_by_service


def envoy_bootstrap(route_table: table.RouteTable, *, listen: peers.Address,
                    backend: peers.Address, admin: peers.Address,
                    access_log: str) -> dict[str, Any]:
    """``table.envoy_config`` with the policy set's Envoy equivalents."""
    base = table.envoy_config(route_table, listen=listen, backend=backend, admin=admin,
                              access_log=access_log)
    objects = [from_dict(d) for d in policyset.documents()]
    service = from_dict(next(d for d in yaml.safe_load_all(
        table.tulle_config(route_table, listen="127.0.0.1:1", backend="127.0.0.1:2"))
        if d.get("kind") == "Service"))
    assert isinstance(service, Service)
    params = params_by_service([o for o in objects if isinstance(o, BackendTrafficPolicy)],
                               [service])
    (limit,) = [o for o in objects if isinstance(o, HTTPLocalRateLimitPolicy)]
    return envoy_policy.apply(
        base,
        authorization=[o for o in objects if isinstance(o, AuthorizationPolicy)],
        identities=envoy_policy.Identities.of([o for o in objects if isinstance(o, Pod)],
                                              policyset.TRUST_DOMAIN),
        rate_limit=limit,
        backend=params[(table.NAMESPACE, table.SERVICE)],
    )


def tulle_config(route_table: table.RouteTable, *, listen: str, backend: str,
                 parts: tuple[str, ...] = policyset.PARTS) -> str:
    """``table.tulle_config`` with the policy set's documents (or some ``parts``)."""
    return (table.tulle_config(route_table, listen=listen, backend=backend) + "---\n"
            + yaml.safe_dump_all(policyset.documents(parts), sort_keys=False))


BREAKDOWN = (("authz only", ("authz",)), ("rate limit + outlier detection only",
                                          ("ratelimit", "outlier")))
"""Tulle with part of the policies: where their cost is (diagnostics, not compared)."""


def policy_summary() -> list[str]:
    deny = sum(1 for _, action, _ in policyset.RULES if action == "DENY")
    return [
        f"{len(policyset.RULES)} AuthorizationPolicy rules (one per policy, targetRefs the "
        f"Gateway): {deny} DENY that the measured request never matches, "
        f"{len(policyset.RULES) - deny} ALLOW of which only the last by name matches it: "
        + ", ".join(name for name, _, _ in policyset.RULES),
        f"HTTPLocalRateLimitPolicy total {policyset.RATE:,} req/s on the backend Service "
        "(never reached); Envoy: local_ratelimit, a token bucket of as many tokens per 1 s",
        "BackendTrafficPolicy outlierDetection (consecutive5xxErrors 5, "
        "consecutiveGatewayErrors 3, interval 10s, baseEjectionTime 30s, maxEjectionPercent "
        "50); Envoy: the cluster's outlier_detection with the same numbers",
        f"caller identity: the Pod {policyset.CLIENT_NAMESPACE}/wrk (ServiceAccount "
        f"{policyset.CLIENT_SA}) at {policyset.CLIENT_IP}; Envoy (no mTLS here) matches "
        "principals, namespaces and ServiceAccounts as the addresses of the pods holding them",
        "Tulle runs `python -m l7proxy --config FILE`, which enforces the file's "
        "AuthorizationPolicies and rate limits as l7proxy/node.py enforces the cluster's",
    ]


class PolicyRun(cli.Run):
    """The four peers and their measurements (``cli.Run``'s processes and wrk)."""

    varying = True
    """Requests from ``bench.l7.requestmix`` (False: the one request repeated)."""

    def tulle_peer(self, policies: bool, flows: str, tag: str,
                   parts: tuple[str, ...] = policyset.PARTS) -> Peer:
        if not policies:
            return self.tulle(flows, tag)
        port, metrics = peers.free_port(), peers.free_port()
        config = tulle_config(self.table, listen=f"{HOST}:{port}",
                              backend=f"{HOST}:{self.backend_port}", parts=parts)
        peer = peers.start_tulle(self.workdir, config, port, metrics, self.opts.peer_core,
                                 flows, self.path, self.headers, tag)
        self.started(peer.proc)
        return peer

    def envoy_peer(self, policies: bool, access_log: str, tag: str) -> Peer:
        if not policies:
            return self.envoy(access_log, tag)
        port, admin = peers.free_port(), peers.free_port()
        bootstrap = envoy_bootstrap(self.table, listen=(HOST, port),
                                    backend=(HOST, self.backend_port), admin=(HOST, admin),
                                    access_log=access_log)
        peer = peers.start_envoy(self.workdir, bootstrap, port, admin, self.opts.peer_core,
                                 self.path, self.headers, tag)
        self.started(peer.proc)
        return peer

    def preflight(self, running: dict[str, Peer]) -> list[Check]:
        """The measured request (200 from all four), each ``policyset.DENIED`` request
        (200 off, 403 on) and, for varying requests, the first 16 of their sequence."""
        checks = [Check("the measured request", "GET", self.path, list(self.headers),
                        {"off": 200, "on": 200})]
        if self.script is not None:
            for n in range(1, requestmix.DENY_EVERY + 1):
                target, headers = requestmix.nth(n, self.path, self.headers)
                checks.append(Check(f"varying request {n}", "GET", target, list(headers),
                                    {"off": 200, "on": 403 if requestmix.denied(n) else 200}))
        for denied in policyset.DENIED:
            checks.append(Check(denied.why, denied.method, self.path + denied.suffix,
                                [*self.headers, *denied.headers], {"off": 200, "on": 403}))
        for check in checks:
            for key, peer in running.items():
                check.got[key] = peers.request(peer.address, check.path, check.headers,
                                               check.method)[0]
            self.log(f"    {check.method} {check.path} {check.headers or ''}: {check.got}"
                     f"{'' if check.passed else '  WRONG'}")
        return checks

    def run(self, command: str, note: str) -> PolicyResult:
        opts = self.opts
        began = time.monotonic()
        started = dt.datetime.now().astimezone()
        load_avg_start = os.getloadavg()
        self.log(f"bench-l7-policies: {len(self.table.rules)} route rules, "
                 f"{len(policyset.RULES)} AuthorizationPolicy rules, request {self.path}"
                 f"{'/N (varying)' if self.varying else ' (repeated)'}")
        if self.varying:
            script = self.workdir / "requests.lua"
            script.write_text(requestmix.lua_script(self.path, self.headers))
            self.script = str(script)
        denied = 2 / requestmix.DENY_EVERY if self.varying else 0.0
        nginx = self.started(peers.start_nginx(self.workdir, self.backend_port, opts.load_core))
        drain, drain_path = peers.start_drain(self.workdir, opts.load_core)
        self.started(drain)
        self.log("  probe: do both route tables pick the same rule?")
        if not all(p.agree for p in self.probe()):
            raise BenchError("the two route tables do not agree: refusing to compare")
        running: dict[str, Peer] = {}
        for state in STATES:
            on = state == "on"
            running[f"tulle-{state}"] = self.tulle_peer(on, f"unix:{drain_path}", state)
            running[f"envoy-{state}"] = self.envoy_peer(on, "/dev/null", state)
        self.log("  preflight: do both enforce the policies?")
        checks = self.preflight(running)
        if not all(c.passed for c in checks):
            raise BenchError("a peer does not answer as the policies say (WRONG above): "
                             "refusing to compare unequal work")
        rows: list[Row] = []
        for round_ in range(1, opts.rounds + 1):
            order = list(running) if round_ % 2 else list(reversed(running))
            self.log(f"  round {round_}: {' then '.join(order)}")
            for key in order:
                peer = running[key]
                variant = cli.TULLE_VARIANT if peer.name == "tulle" else cli.ENVOY_VARIANT
                state = key.split("-")[1]
                measured = self.measure(peer, peer.address, f"{variant}; policies {state}",
                                        round_, f"{key}-r{round_}",
                                        denied if state == "on" else 0.0)
                rows.append(Row(round_, peer.name, state, measured))
        for peer in running.values():
            self.stop(peer.proc)
        breakdown: list[Row] = []
        if opts.diagnostics:
            self.log("  breakdown (Tulle with part of the policies; not compared)")
            for label, parts in BREAKDOWN:
                peer = self.tulle_peer(True, f"unix:{drain_path}", "-".join(parts), parts)
                measured = self.measure(peer, peer.address, f"{cli.TULLE_VARIANT}; {label}",
                                        0, f"tulle-{'-'.join(parts)}",
                                        denied if "authz" in parts else 0.0)
                breakdown.append(Row(0, "tulle", label, measured))
                self.stop(peer.proc)
        self.stop(drain)
        self.stop(nginx)
        measurements = [r.measurement for r in rows]
        return PolicyResult(
            date=started.strftime("%Y-%m-%d"),
            started=started.isoformat(timespec="seconds"),
            command=command,
            note=note,
            setup={
                "peer_core": opts.peer_core, "load_core": opts.load_core,
                "wrk": f"wrk -t1 -c{opts.connections} -d{opts.duration}s --latency "
                       f"(warm-up {opts.warmup} s first, not recorded)",
                "rounds": opts.rounds,
                "requests": (f"varying: {self.path}/N?page=N%{requestmix.PAGES} and "
                             "x-client-version, N = 1, 2, ... (no request repeats; "
                             f"2 in {requestmix.DENY_EVERY} denied with the policies on: "
                             "bench.l7.requestmix)" if self.varying else
                             f"repeated: {self.path} on every connection"),
                "order": "round 1: tulle-off, envoy-off, tulle-on, envoy-on; round 2 reversed",
                "tulle_argv": {k: p.proc.argv for k, p in running.items() if p.name == "tulle"},
                "envoy_argv": {k: p.proc.argv for k, p in running.items() if p.name == "envoy"},
                "versions": runinfo.versions(),
                "git": runinfo.git_info(),
            },
            machine=runinfo.machine_info(load_avg_start, measurements),
            policies={"summary": policy_summary(),
                      "rules": [[n, a] for n, a, _ in policyset.RULES]},
            checks=checks,
            rows=rows,
            breakdown=breakdown,
            problems=self.problems,
            seconds=time.monotonic() - began,
        )


def parse_args(argv: Sequence[str] | None) -> tuple[cli.Options, str, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.policy_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 s, one round, no breakdown")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip Tulle with only the AuthorizationPolicies, and with only "
                             "the rate limit and outlier detection")
    parser.add_argument("--requests", choices=("varying", "repeated"), default="varying",
                        help="varying: no request repeats (every one judged); repeated: the "
                             "one request on every connection (the verdict memo's hit path)")
    parser.add_argument("--note", default="", help="a sentence for the results file")
    parser.add_argument("--out", type=Path, default=runinfo.RESULTS)
    args = parser.parse_args(argv)
    opts = cli.Options(duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                       diagnostics=not args.no_breakdown, profile="never", out=args.out,
                       tag="policies")
    if args.quick:
        opts.duration, opts.warmup, opts.rounds, opts.tag = 3, 1, 1, "policies-quick"
        opts.diagnostics = False
    varying = args.requests == "varying"
    if not varying:
        opts.tag += "-repeated"
    if not 1 <= opts.duration <= 60 or not 1 <= opts.rounds <= 5:
        parser.error("--duration must be 1..60 and --rounds 1..5 (keep the run bounded)")
    return opts, args.note, varying


def main(argv: Sequence[str] | None = None) -> int:
    opts, note, varying = parse_args(argv)
    args = sys.argv[1:] if argv is None else list(argv)
    if "--note" in args:  # the note is printed apart
        at = args.index("--note")
        args = args[:at] + args[at + 2:]
    command = "python -m bench.l7.policy_bench " + shlex.join(args)
    if len(os.sched_getaffinity(0)) < 2:
        print("bench-l7-policies: needs two cores", file=sys.stderr)
        return 2
    try:
        for tool in ("wrk", "nginx", "taskset"):
            peers.find_tool(tool)
        peers.find_tool("envoy", venv=True)
    except BenchError as exc:
        print(f"bench-l7-policies: {exc}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {opts.load_core})

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="tulle-bench-l7-policies-"))
    run = PolicyRun(opts, workdir)
    run.varying = varying
    try:
        result = run.run(command.strip(), note)
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"bench-l7-policies: failed: {exc}\n  logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench-l7-policies: interrupted; logs in {workdir}", file=sys.stderr)
        return 130
    finally:
        run.stop_all()
    opts.out.mkdir(parents=True, exist_ok=True)
    base = runinfo.output_base(opts.out, result.date, opts.tag)
    base.with_suffix(".json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(result, base.name))
    print(f"\ntarget met: {result.met} (Tulle/Envoy req/s off {result.mean_ratio('rps_off')}, "
          f"on {result.mean_ratio('rps_on')})\nresults: {base.with_suffix('.md')} and .json")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
