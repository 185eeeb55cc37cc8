"""What a restarted agent's first apply costs at N Services (the kernel maps already hold
them): the Applier's adoption (reads of the pinned maps) and its first ``apply`` of the
same plan, CPU and wall seconds, after a fresh write of that plan; then a restart after
some Services' backends changed meanwhile (the maps must end as a fresh write leaves them).

Root (BCC compile, maps pinned under a throw-away dir, removed after). Run it against two
trees in the same minutes (A/B), e.g.:

    sudo env PYTHONPATH=/work/main .venv/bin/python -m bench.control.restartwrites
    sudo env PYTHONPATH=$PWD .venv/bin/python -m bench.control.restartwrites
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import secrets
import shutil
import time
from array import array
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from agent.datapath.applier import Applier
from agent.datapath.desired import DesiredDatapath
from agent.datapath.maglev import CompactTable, maglev_tables
from agent.datapath.services import Backends, ServiceEntry, ServiceKey, ServicePlan
from agent.model.frozen import FrozenMap


def plan(services: int, per: int, seed: int, changed: float = 0.0) -> ServicePlan:
    rng = random.Random(seed)
    keys, sets = [], []
    for i in range(services):
        key = ServiceKey(IPv4Address(0x0A600000 + i + 1), 80, 6)
        base = 0x0AF40000 + i * 64
        if changed and rng.random() < changed:
            base += 1  # one backend replaced
        ips = array("I", range(base, base + per))
        keys.append(key)
        sets.append(Backends.of(ips, array("H", [8080] * per)))
    ips, ports = array("I"), array("H")
    for b in sets:
        ips += b.ips
        ports += b.ports
    tables = maglev_tables(ips, ports, [len(b) for b in sets])
    entries = {
        k: ServiceEntry(k, "ns", f"s{i}", "http", b, 0, CompactTable.of(t))
        for i, (k, b, t) in enumerate(zip(keys, sets, tables, strict=True))
    }
    return ServicePlan(entries=FrozenMap(entries))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Any) -> tuple[Any, float, float]:
    wall, c = time.perf_counter(), cpu()
    out = fn()
    return out, round(time.perf_counter() - wall, 4), round(cpu() - c, 4)


def dump(dp: Any) -> dict[str, int]:
    return {n: sum(1 for _ in dp.table(n).keys())
            for n in ("lb_services_v1", "lb_backends_v1", "lb_maglev_v1")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from agent.datapath.programs import load_datapath

    pin = Path("/sys/fs/bpf/tulle") / f"rwbench-{secrets.token_hex(3)}" / "n1"
    dp = load_datapath(pin)
    ipr = IPRoute()
    out: dict[str, Any] = {"services": args.services, "endpoints": args.endpoints}
    try:
        same = DesiredDatapath(services=plan(args.services, args.endpoints, 1))
        moved = DesiredDatapath(services=plan(args.services, args.endpoints, 1, changed=0.01))
        _, out["fresh_s"], out["fresh_cpu_s"] = timed(lambda: Applier(dp, lambda: ipr).apply(same))
        rows = []
        for _ in range(args.repeat):
            applier, adopt_s, adopt_cpu = timed(lambda: Applier(dp, lambda: ipr))
            _, apply_s, apply_cpu = timed(lambda a=applier: a.apply(same))
            rows.append({"adopt_s": adopt_s, "adopt_cpu_s": adopt_cpu,
                         "apply_s": apply_s, "apply_cpu_s": apply_cpu})
        out["restart_same"] = rows
        applier, adopt_s, adopt_cpu = timed(lambda: Applier(dp, lambda: ipr))
        _, apply_s, apply_cpu = timed(lambda: applier.apply(moved))
        out["restart_1pct_changed"] = {"adopt_s": adopt_s, "adopt_cpu_s": adopt_cpu,
                                       "apply_s": apply_s, "apply_cpu_s": apply_cpu}
        out["entries"] = dump(dp)
    finally:
        ipr.close()
        dp.close()
        shutil.rmtree(pin.parent, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
