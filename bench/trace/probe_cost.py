"""What ``tcp_probe`` costs per received segment, classic tracepoint against raw.

    sudo .venv/bin/python -m bench.trace.probe_cost [SEGMENTS]

In a private network namespace (removed at the end), one process pushes SEGMENTS 64-byte
TCP_NODELAY segments over loopback to another; the CPU time of both (user + system) is
measured five times each with the tracer off, with the classic ``tcp:tcp_probe``
tracepoint and with the raw one, for a socket the tracer does not trace (every other TCP
socket of the node) and for one it traces (a local pod's). The tracer attaches node-wide
while it runs: run it under the lab lock, on a quiet machine if the numbers matter.
A side-by-side sanity check, not the issue's benchmark (`make bench-trace`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

NS = "tulle-probecost"
ADDR = "10.99.77.1"  # on the namespace's lo only
REPS = 5

CHILD = r"""
import os, resource, socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
srv = socket.socket(); srv.bind((addr, 0)); srv.listen(1)
pid = os.fork()
if pid == 0:
    c, _ = srv.accept()
    while c.recv(1 << 20):
        pass
    os._exit(0)
cli = socket.create_connection((addr, srv.getsockname()[1]))
cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range(n):
    cli.send(b"x" * 64)
cli.close()
os.waitpid(pid, 0)
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime)
"""


def cpu_seconds(segments: int) -> float:
    out = subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", CHILD,
                          str(segments), ADDR], check=True, capture_output=True, text=True)
    return float(out.stdout)


def report(label: str, segments: int) -> float:
    runs = sorted(cpu_seconds(segments) for _ in range(REPS))
    median = runs[REPS // 2]
    print(f"{label:22s} median {median:.3f} s CPU  runs {[round(r, 3) for r in runs]}",
          flush=True)
    return median


def main(segments: int) -> None:
    from agent.datapath.features import feature_probe
    from agent.tracing.tracer import Tracer, plan_hooks

    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", NS, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
        features = feature_probe()
        kinds: Mapping[str, Mapping[str, bool]] = {
            "classic": {**features, "raw_tracepoint:kfree_skb": False},  # no raw: fallback
            "raw": features,
        }
        off = report("off", segments)
        for kind, feats in kinds.items():
            tracer = Tracer.load(plan_hooks(feats))
            try:
                for traced in (False, True):
                    tracer.set_local([ADDR] if traced else [])
                    label = f"{kind}, {'traced' if traced else 'not traced'}"
                    extra = report(label, segments) - off
                    print(f"{'':22s} {extra * 1e9 / segments:+.0f} ns per segment", flush=True)
            finally:
                tracer.close()
        report("off again", segments)
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
