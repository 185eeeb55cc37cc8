"""A restarted agent adopts the pinned maps: whatever changed while no agent ran (Services
gone, new, with other endpoints or affinity; a policy changed), and whatever another writer
changed in them, its first sync leaves them exactly as a fresh agent's first sync does
(services read back per Maglev slot, no backend of another generation left, policy and
ipcache byte for byte)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from agent.datapath import maps
from agent.datapath.controller import DatapathController
from agent.flows.store import FlowRing
from tests.bpf.test_datapath import Runner
from tests.bpf.test_incremental_apply import endpoint_slice, read_services, service

pytestmark = pytest.mark.bpf
SPAN = maps.BACKEND_GENERATION_SPAN
Objects = dict[tuple[str, str, str], dict[str, Any]]


def pod(name: str, ip: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "a", "name": name, "uid": name, "resourceVersion": "1",
                         "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "phase": "Running"}}


def policy(name: str, app: str, source: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": "a", "name": name, "resourceVersion": "1"},
            "spec": {"podSelector": {"matchLabels": {"app": app}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": source}}}],
                                  "ports": [{"port": port}]}]}}


def cluster(rng: random.Random, services: int = 60) -> Objects:
    objects: Objects = {}
    for i in range(services):
        svc = service("a", f"s{i}", f"10.96.1.{i + 1}", affinity=i % 7 == 0)
        ips = [f"10.244.{1 + i // 200}.{(i * 5 + b) % 250 + 1}" for b in range(rng.randint(0, 6))]
        add(objects, svc)
        add(objects, endpoint_slice("a", f"s{i}-1", f"s{i}", *ips))
    for i, app in enumerate(("web", "db", "cache")):
        add(objects, pod(f"p{i}", f"10.244.9.{i + 1}", app))
    add(objects, policy("db-from-web", "db", "web", 5432))
    return objects


def add(objects: Objects, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj


def changed(objects: Objects, rng: random.Random) -> Objects:
    """Services gone, new, with other endpoints or affinity; a policy port changed."""
    out = copy.deepcopy(objects)
    for i in range(0, 60, 9):
        del out[("Service", "a", f"s{i}")]
    for i in range(60, 66):
        add(out, service("a", f"s{i}", f"10.96.1.{i + 1}"))
        add(out, endpoint_slice("a", f"s{i}-1", f"s{i}", f"10.244.7.{i}"))
    for i in range(1, 60, 5):
        ips = [f"10.244.8.{(i + b) % 250 + 1}" for b in range(rng.randint(0, 4))]
        add(out, endpoint_slice("a", f"s{i}-1", f"s{i}", *ips, version="2"))
    for i in range(2, 60, 11):
        add(out, service("a", f"s{i}", f"10.96.1.{i + 1}", affinity=i % 7 != 0))
    add(out, policy("db-from-web", "db", "web", 6432))
    return out


def run_agent(r: Runner, objects: Objects) -> None:
    agent = DatapathController("n1", r.dp, FlowRing(64))  # type: ignore[arg-type]
    try:
        agent.resync(list(objects.values()))
    finally:
        agent.close_netlink()


def state(r: Runner) -> dict[str, Any]:
    """What the maps hold, up to the backend generation each service is at."""
    raw = {name: {bytes(k): bytes(v) for k, v in r.dp.table(name).items()}
           for name in ("policy_v1", "policy_cidr_v1", "ipcache_v1")}
    return {"services": read_services(r), **raw}


def fresh_state(r: Runner, objects: Objects) -> dict[str, Any]:
    r.reset()
    run_agent(r, objects)
    return state(r)


def test_a_restart_after_changes_converges_to_a_fresh_agents_maps(dp: Runner) -> None:
    rng = random.Random(7)
    before = cluster(rng)
    after = changed(before, rng)
    expected = fresh_state(dp, after)
    assert expected["policy_v1"] and len(expected["services"]) > 50
    dp.reset()
    run_agent(dp, before)
    first = state(dp)
    run_agent(dp, after)  # a restart on the same pinned maps
    assert state(dp) == expected
    assert first != expected


def test_a_restart_rewrites_services_whose_entries_differ_from_the_plan(dp: Runner) -> None:
    """A Maglev slot, a backend's port and a service's flags changed under the agent (what
    a different writer or a torn write would leave): those services are rewritten."""
    objects = cluster(random.Random(9))
    run_agent(dp, objects)
    expected = state(dp)
    served = [k for k, v in dp.dp.table("lb_services_v1").items() if v.backend_count >= 2]
    maglev, backends = dp.dp.table("lb_maglev_v1"), dp.dp.table("lb_backends_v1")
    services = dp.dp.table("lb_services_v1")
    leaf = maglev[served[0]]
    leaf.slots[5] = (leaf.slots[5] + 1) % services[served[0]].backend_count
    maglev[served[0]] = leaf
    bkey = maps._backend_key(backends, served[1], 0)  # noqa: SLF001
    value = backends[bkey]
    value.port = maps.be16(9)
    backends[bkey] = value
    svc = services[served[2]]
    svc.flags = maps.LB_F_L7
    services[served[2]] = svc
    assert state(dp) != expected
    run_agent(dp, objects)
    assert state(dp) == expected
