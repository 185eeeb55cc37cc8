"""How long an endpoint change takes to reach the datapath maps (issue 3: within 200 ms).

In a lab with the datapath on, a selector-less Service gets a hand-written EndpointSlice;
each round adds or removes an endpoint in the store and polls node1's pinned lb_services_v1
until the backend count matches. Reports median, p95 and max over the rounds.

    sudo .venv/bin/python -m bench.propagation [--rounds 20]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.datapath import maps
from agent.datapath.programs import load_datapath, pin_dir_for
from agent.lab import lifecycle
from agent.lab.state import LabPaths
from agent.store import Store

LAB = "benchprop"


def _slice(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "prop-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "prop"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.244.2.{100 + i}"], "conditions": {"ready": True}}
                      for i in range(n)],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="endpoint change -> datapath map latency")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"• bringing up lab {LAB}", file=sys.stderr)
    lifecycle.up(LAB, 2, lambda m: None)
    try:
        paths = LabPaths.for_lab(LAB)
        service = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "prop", "namespace": "default"},
                   "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
        subprocess.run([sys.executable, "-m", "agent.cli.main", "--lab", LAB, "apply", "-f", "-"],
                       input=json.dumps(service), text=True, check=True, capture_output=True)
        with Store(paths.store) as store:
            vip = store.get("Service", "default", "prop")["spec"]["clusterIP"]
            dp = load_datapath(pin_dir_for(LAB, "node1"))  # adopts the agent's pinned maps
            table = dp.table("lb_services_v1")
            key = maps.lb_key(dp, ipaddress.IPv4Address(vip), 80, 6)

            def count() -> int:
                try:
                    return int(table[key].backend_count)
                except KeyError:
                    return -1

            samples = []
            for round_ in range(args.rounds):
                want = 1 + round_ % 3
                started = time.monotonic()
                store.apply(_slice(want))
                while count() != want:
                    if time.monotonic() - started > 5:
                        raise SystemExit(f"round {round_}: no propagation within 5 s")
                    time.sleep(0.001)
                samples.append((time.monotonic() - started) * 1000)
                time.sleep(0.2)
            dp.close()
        samples.sort()
        p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
        result = {"rounds": len(samples), "median_ms": round(statistics.median(samples), 1),
                  "p95_ms": round(p95, 1), "max_ms": round(samples[-1], 1), "target_ms": 200}
        print(json.dumps(result))
        out = Path("bench/results") / f"propagation-{time.strftime('%Y-%m-%d')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        lifecycle.down(LAB, lambda m: None)


if __name__ == "__main__":
    raise SystemExit(main())
