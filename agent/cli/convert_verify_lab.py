"""`tulle convert --verify --lab NAME`: the Ingresses and their conversion served side by
side in a running lab, the corpus replayed from the lab's external client (the I/O shell
around ``gatewayapi.ingress.labside``; the loopback mode is ``convert_verify``).

Applies the plan (renamed copies of the Ingresses as class ``tulle``, the renamed converted
Gateway, HTTPRoutes and ReferenceGrants, throwaway TLS Secrets) through the lab's API
server, waits (bounded) for the Ingress address and the Gateway's own pool address, then
runs this module in the external client's network namespace (``ip netns exec``): it waits
until each side reaches a backend, replays the probes against both addresses with the
probe's Host and SNI, and prints the observations as JSON. The backend that answered is the
echo server's pod (``labside.backend_of``). Everything applied is deleted afterwards, also
on errors and Ctrl-C, unless ``--keep``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from agent.cli.cluster import Cluster, ClusterError
from agent.cli.convert_verify import ROOT, request, secret_docs
from gatewayapi.ingress import Conversion
from gatewayapi.ingress.compare import Observation, Outcome, compare
from gatewayapi.ingress.compare import unchecked as unchecked_outcome
from gatewayapi.ingress.corpus import Probe
from gatewayapi.ingress.labside import (
    LAB_CLASS,
    LabPlan,
    Ref,
    backend_of,
    backend_services,
    lab_plan,
    missing_services,
)
from gatewayapi.ingress.sides import VerifyError

ADDRESS_TIMEOUT = 60.0
"""How long the lab may take to give both sides their pool addresses."""
READY_TIMEOUT = 60.0
"""How long each side may take to reach a backend once it has its address."""
SETTLE = 2.0
"""After the first answer from a backend, for the rest of the configuration to arrive."""
READY_PROBES = 8

Replay = Callable[[Sequence[Mapping[str, Any]], Conversion, Sequence[Probe]], list[Outcome]]


def replayer(cluster: Cluster, lab: str, keep: bool, budget: float = 300.0) -> Replay:
    """``convert_verify.run_verify``'s replay step, in lab ``lab``."""

    def replay(
        documents: Sequence[Mapping[str, Any]], conversion: Conversion, probes: Sequence[Probe]
    ) -> list[Outcome]:
        return verify_in_lab(cluster, lab, documents, conversion, probes, keep=keep,
                             budget=budget)

    return replay


def verify_in_lab(
    cluster: Cluster,
    lab: str,
    documents: Sequence[Mapping[str, Any]],
    conversion: Conversion,
    probes: Sequence[Probe],
    *,
    keep: bool,
    budget: float,
) -> list[Outcome]:
    netns = _external_netns(lab)
    services = cluster.resource_for("v1", "Service")
    if services is None:
        raise VerifyError(f"lab {lab!r} serves no v1 Service")
    present = [(s["metadata"]["namespace"], s["metadata"]["name"])
               for s in cluster.list(services, None)]
    problem = missing_services(backend_services(documents, conversion), present)
    if problem:
        raise VerifyError(problem)
    plan = lab_plan(documents, conversion, secret_docs(documents), secrets.token_hex(3))
    others = _other_tulle_ingresses(cluster)
    if others:
        plan.notes.append(
            f"the lab already serves {len(others)} Ingress(es) of class {LAB_CLASS!r} at the "
            f"same address ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): "
            "their rules and defaultBackend are part of the Ingress side's answers")
    for note in plan.notes:
        click.echo(f"verify: {note}", err=True)
    applied: list[Ref] = []
    try:
        for obj in plan.objects:
            res = cluster.resource_for(obj["apiVersion"], obj["kind"])
            if res is None:
                raise VerifyError(f"lab {lab!r} does not serve {obj['apiVersion']} {obj['kind']}")
            cluster.apply(res, obj, dry_run=False, force=True)
            applied.append((obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"),
                            obj["metadata"]["name"]))
        ingress_ip, gateway_ip = _addresses(cluster, plan)
        click.echo(f"verify: Ingress side at {ingress_ip}, Gateway side at {gateway_ip} "
                   f"(lab {lab!r}, from its external client)", err=True)
        observed = _replay(netns, ingress_ip, gateway_ip, probes, budget)
    finally:
        if keep:
            click.echo("verify: --keep: left in the lab: " + ", ".join(
                f"{kind} {ns + '/' if ns else ''}{name}" for _, kind, ns, name in applied),
                err=True)
        else:
            _cleanup(cluster, [ref for ref in plan.cleanup if ref in applied])
    return [
        compare(probe, pair[0], pair[1]) if pair is not None
        else unchecked_outcome(probe, f"the {budget:.0f} s budget ran out")
        for probe, pair in zip(probes, observed, strict=True)
    ]


def _other_tulle_ingresses(cluster: Cluster) -> list[str]:
    """The lab's Ingresses of class tulle (or none: tulle is the lab's default class)."""
    res = cluster.resource_for("networking.k8s.io/v1", "Ingress")
    if res is None:
        return []
    return [f"{i['metadata']['namespace']}/{i['metadata']['name']}"
            for i in cluster.list(res, None)
            if ((i.get("spec") or {}).get("ingressClassName")
                or (i["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
                or LAB_CLASS) == LAB_CLASS]


def _external_netns(lab: str) -> str:
    from lab import labstatus
    from lab.state import LabPaths

    plan = labstatus.load_plan(LabPaths.for_lab(lab))
    if plan is None:
        raise VerifyError(f"lab {lab!r} is not up")
    if not os.path.exists(f"/var/run/netns/{plan.external_netns}"):
        raise VerifyError(f"lab {lab!r} has no external client (recreate it with a newer "
                          "`tulle lab up`)")
    return str(plan.external_netns)


def _addresses(cluster: Cluster, plan: LabPlan) -> tuple[str, str]:
    """The Ingress copies' address and the Gateway's, once the lab has assigned both."""
    ing_res = cluster.resource_for("networking.k8s.io/v1", "Ingress")
    gw_res = cluster.resource_for("gateway.networking.k8s.io/v1", "Gateway")
    assert ing_res is not None and gw_res is not None  # applied above
    ing_ns, ing_name = plan.ingresses[0]
    gw_ns, gw_name = plan.gateway
    deadline = time.monotonic() + ADDRESS_TIMEOUT
    while True:
        ing = cluster.get(ing_res, ing_name, ing_ns).get("status") or {}
        gw = cluster.get(gw_res, gw_name, gw_ns).get("status") or {}
        ing_ips = [e.get("ip") for e in (ing.get("loadBalancer") or {}).get("ingress") or []]
        gw_ips = [a.get("value") for a in gw.get("addresses") or []]
        if ing_ips and ing_ips[0] and gw_ips and gw_ips[0]:
            return str(ing_ips[0]), str(gw_ips[0])
        if time.monotonic() > deadline:
            waiting = [what for what, ips in ((f"Ingress {ing_ns}/{ing_name}", ing_ips),
                                              (f"Gateway {gw_ns}/{gw_name}", gw_ips)) if not ips]
            raise VerifyError(f"no address in {ADDRESS_TIMEOUT:.0f} s for "
                              f"{' and '.join(waiting)} (is the lab's LoadBalancer pool full?)")
        time.sleep(0.5)


def _cleanup(cluster: Cluster, refs: Sequence[Ref]) -> None:
    """Delete what was applied; a failure is reported and the rest still deleted."""
    for api_version, kind, ns, name in refs:
        try:
            res = cluster.resource_for(api_version, kind)
            if res is not None:
                cluster.delete(res, name, ns)
        except ClusterError as err:
            click.echo(f"verify: could not delete {kind} {ns}/{name}: {err.message}", err=True)


def _replay(netns: str, ingress_ip: str, gateway_ip: str, probes: Sequence[Probe],
            budget: float) -> list[tuple[Observation, Observation] | None]:
    """Run :func:`main` in the external client's netns; its observations, per probe."""
    job = {"sides": [ingress_ip, gateway_ip], "budget": budget,
           "probes": [dataclasses.asdict(p) for p in probes]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        out = subprocess.run(  # our own interpreter and module, in the lab's netns
            ["ip", "netns", "exec", netns, sys.executable, "-m", "agent.cli.convert_verify_lab"],
            input=json.dumps(job), capture_output=True, text=True, env=env,
            timeout=READY_TIMEOUT * 2 + SETTLE + budget + 30,
        )
    except subprocess.TimeoutExpired as err:
        raise VerifyError("the replay in the external client did not finish") from err
    if out.returncode != 0:
        raise VerifyError(f"the replay in the external client failed: {out.stderr[-800:]}")
    return [None if pair is None else (_observation(pair[0]), _observation(pair[1]))
            for pair in json.loads(out.stdout)]


def _observation(data: Mapping[str, Any]) -> Observation:
    return Observation(**{**data, "headers": tuple(tuple(h) for h in data["headers"])})


def _probe(data: Mapping[str, Any]) -> Probe:
    return Probe(**{**data, **{k: tuple(tuple(x) if isinstance(x, list) else x for x in data[k])
                               for k in ("headers", "annotations", "expect")}})


def _ask(address: str, probe: Probe) -> Observation:
    return request({80: 80, 443: 443}, probe, {}, address=address, backend_of=backend_of)


def main() -> int:
    """(in the external client's netns) stdin: the job; stdout: per probe, both sides'
    observations, or null when the budget ran out."""
    job = json.load(sys.stdin)
    sides: list[str] = job["sides"]
    probes = [_probe(p) for p in job["probes"]]
    ready = [p for p in probes if p.method == "GET" and not p.annotations][:READY_PROBES]
    for address in sides:
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(_ask(address, p).backend for p in ready or probes[:1]):
            if time.monotonic() > deadline:
                print(f"{address} reached no backend in {READY_TIMEOUT:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.5)
    time.sleep(SETTLE)
    deadline = time.monotonic() + float(job["budget"])
    out: list[list[dict[str, Any]] | None] = []
    for probe in probes:
        if time.monotonic() > deadline:
            out.append(None)
            continue
        out.append([dataclasses.asdict(_ask(address, probe)) for address in sides])
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
