"""What a run measured, and the ratios the issue's targets are about (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.l4.wrk import WrkResult

DIRECT_TULLE = "direct-tulle"
DIRECT_PLAIN = "direct-plain"
TULLE = "tulle"
IPTABLES = "iptables"
TULLE_NODEPORT = "tulle-nodeport"
IPTABLES_NODEPORT = "iptables-nodeport"
# The Service paths a run can measure (`--paths`): to the ClusterIP from a client pod, and to
# node1's address : nodePort from the lab's external client.
CLUSTERIP = "clusterip"
NODEPORT = "nodeport"
CLOSE = "close"
KEEPALIVE = "keepalive"
CLEAN_CORES = 0.25  # a run is "clean" when other users of the machine took less than this

PATH_TITLES = {
    DIRECT_TULLE: "pod IP direct (Tulle lab: datapath on the veths)",
    DIRECT_PLAIN: "pod IP direct (comparison lab: no datapath)",
    TULLE: "ClusterIP via Tulle eBPF",
    IPTABLES: "ClusterIP via iptables (kube-proxy chains)",
    TULLE_NODEPORT: "NodePort via Tulle eBPF (external client -> node1)",
    IPTABLES_NODEPORT: "NodePort via iptables (kube-proxy chains, external client -> node1)",
}


@dataclass(frozen=True, slots=True)
class Run:
    result: WrkResult
    load1: float  # 1-minute load average when the run started
    lab_cores: float  # cores the lab's own processes (agents, controller, DNS) used meanwhile
    lab_roles: dict[str, float] = field(default_factory=dict)  # the same, per process
    others_cores: float = 0.0  # cores used meanwhile by user processes outside the labs

    @property
    def clean(self) -> bool:
        return self.others_cores < CLEAN_CORES

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "load1": self.load1, "lab_cores": self.lab_cores,
                "lab_roles": self.lab_roles, "others_cores": self.others_cores,
                "clean": self.clean}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(WrkResult.from_json(data), data.get("load1", 0.0), data.get("lab_cores", 0.0),
                   dict(data.get("lab_roles") or {}), data.get("others_cores", 0.0))


@dataclass
class Measurement:
    path: str
    services: int | None  # None for the direct paths
    mode: str
    url: str
    runs: list[Run] = field(default_factory=list)

    @property
    def counted(self) -> list[Run]:
        """The clean runs if there are any (a disturbed run only ever reads low), else all."""
        return [r for r in self.runs if r.clean] or self.runs

    @property
    def best(self) -> Run:
        return max(self.counted, key=lambda r: r.result.rps)

    @property
    def worst(self) -> Run:
        return min(self.counted, key=lambda r: r.result.rps)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "services": self.services, "mode": self.mode, "url": self.url,
            "best_rps": self.best.result.rps, "best_p99_ms": self.best.result.p99_ms,
            "runs": [r.to_json() for r in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(data["path"], data["services"], data["mode"], data["url"],
                   [Run.from_json(r) for r in data["runs"]])


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None
    low: float | None  # the worst pairing of the two runs on each side (noise range)
    high: float | None
    target: float | None = None  # None: informational

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value >= self.target

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "low": self.low, "high": self.high,
                "target": self.target, "met": self.met}


def services(n: int) -> str:
    return f"{n:,} service" + ("" if n == 1 else "s")


def find(ms: list[Measurement], path: str, mode: str,
         services: int | None = None) -> Measurement | None:
    for m in ms:
        if m.path == path and m.mode == mode and m.services == services and m.runs:
            return m
    return None


def ratio(name: str, num: Measurement | None, den: Measurement | None,
          target: float | None = None) -> Ratio:
    if num is None or den is None or den.best.result.rps <= 0 or den.worst.result.rps <= 0:
        return Ratio(name, None, None, None, target)
    return Ratio(
        name,
        round(num.best.result.rps / den.best.result.rps, 3),
        round(num.worst.result.rps / den.best.result.rps, 3),
        round(num.best.result.rps / den.worst.result.rps, 3),
        target,
    )


def ratios(ms: list[Measurement], counts: list[int]) -> list[Ratio]:
    """The issues' targets at the largest service count, then informational ratios, for the
    paths the run measured (ClusterIP: issue 3; NodePort: issue 15)."""
    out: list[Ratio] = []
    if any(m.path in (TULLE, IPTABLES, DIRECT_TULLE, DIRECT_PLAIN) for m in ms):
        out += _clusterip_ratios(ms, counts)
    if any(m.path in (TULLE_NODEPORT, IPTABLES_NODEPORT) for m in ms):
        out += _nodeport_ratios(ms, counts)
    return out


def _nodeport_ratios(ms: list[Measurement], counts: list[int]) -> list[Ratio]:
    """Issue 15: "Tulle >= 2x iptables at 10,000 Services", on new connections per second
    (iptables walks its chains for a connection's first packet only; keep-alive is shown)."""
    top, one = max(counts), min(counts)
    out = [ratio(f"NodePort new conn/s at {services(top)}: Tulle ÷ iptables",
                 find(ms, TULLE_NODEPORT, CLOSE, top), find(ms, IPTABLES_NODEPORT, CLOSE, top),
                 2.0)]
    for n in sorted(counts):
        if n != top:
            out.append(ratio(f"NodePort new conn/s at {services(n)}: Tulle ÷ iptables",
                             find(ms, TULLE_NODEPORT, CLOSE, n),
                             find(ms, IPTABLES_NODEPORT, CLOSE, n)))
    for n in sorted(counts):
        out.append(ratio(f"NodePort keep-alive req/s at {services(n)}: Tulle ÷ iptables",
                         find(ms, TULLE_NODEPORT, KEEPALIVE, n),
                         find(ms, IPTABLES_NODEPORT, KEEPALIVE, n)))
    out += [
        ratio(f"Tulle NodePort new conn/s: {services(top)} ÷ {services(one)}",
              find(ms, TULLE_NODEPORT, CLOSE, top), find(ms, TULLE_NODEPORT, CLOSE, one)),
        ratio(f"iptables NodePort new conn/s: {services(top)} ÷ {services(one)}",
              find(ms, IPTABLES_NODEPORT, CLOSE, top), find(ms, IPTABLES_NODEPORT, CLOSE, one)),
    ]
    return out


def _clusterip_ratios(ms: list[Measurement], counts: list[int]) -> list[Ratio]:
    """Issue 3's three targets at the largest service count, then informational ratios."""
    top, one = max(counts), min(counts)
    out = [
        ratio(f"Tulle new conn/s: {services(top)} ÷ {services(one)}",
              find(ms, TULLE, CLOSE, top), find(ms, TULLE, CLOSE, one), 0.95),
        ratio(f"new conn/s at {services(top)}: Tulle ÷ iptables",
              find(ms, TULLE, CLOSE, top), find(ms, IPTABLES, CLOSE, top), 4.0),
        ratio(f"keep-alive req/s: Tulle ClusterIP ({services(top)}) ÷ pod IP direct",
              find(ms, TULLE, KEEPALIVE, top), find(ms, DIRECT_TULLE, KEEPALIVE), 0.97),
    ]
    for n in sorted(counts):
        if n != top:
            out.append(ratio(f"keep-alive req/s: Tulle ClusterIP ({services(n)}) ÷ pod IP direct",
                             find(ms, TULLE, KEEPALIVE, n), find(ms, DIRECT_TULLE, KEEPALIVE)))
    for n in sorted(counts):
        out.append(ratio(f"new conn/s at {services(n)}: Tulle ÷ iptables",
                         find(ms, TULLE, CLOSE, n), find(ms, IPTABLES, CLOSE, n)))
    out += [
        ratio(f"iptables new conn/s: {services(top)} ÷ {services(one)}",
              find(ms, IPTABLES, CLOSE, top), find(ms, IPTABLES, CLOSE, one)),
        ratio(f"Tulle new conn/s: ClusterIP ({services(one)}) ÷ pod IP direct",
              find(ms, TULLE, CLOSE, one), find(ms, DIRECT_TULLE, CLOSE)),
        ratio("pod IP direct, new conn/s: Tulle lab ÷ no-datapath lab",
              find(ms, DIRECT_TULLE, CLOSE), find(ms, DIRECT_PLAIN, CLOSE)),
        ratio("pod IP direct, keep-alive req/s: Tulle lab ÷ no-datapath lab",
              find(ms, DIRECT_TULLE, KEEPALIVE), find(ms, DIRECT_PLAIN, KEEPALIVE)),
    ]
    return out
