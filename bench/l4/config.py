"""What one `make bench-l4` run does: service counts, paths, load and noise handling."""

from __future__ import annotations

from dataclasses import dataclass

from bench.l4.results import CLUSTERIP, IPTABLES, NODEPORT, TULLE


@dataclass(frozen=True)
class BenchConfig:
    counts: tuple[int, ...] = (1, 1_000, 10_000)
    seconds: int = 10
    repeats: int = 2
    threads: int = 2
    connections: int = 32
    warmup_seconds: int = 2
    batch: int = 2_500  # filler Services per `tulle apply` (two objects each)
    labs: tuple[str, ...] = (TULLE, IPTABLES)
    # ClusterIP from a client pod, and node1's address : nodePort from the external client.
    # With NODEPORT every Service is type NodePort (see bench.l4.manifests).
    paths: tuple[str, ...] = (CLUSTERIP,)
    iptables_restore: str = "iptables-restore"
    quick: bool = False
    # On a shared machine: when no run of a figure was clean (see results.CLEAN_CORES), wait
    # up to quiet_wait s for the others to calm down and run again, at most extra_runs more
    # times per figure and noise_budget s of waiting and re-running in the whole benchmark.
    extra_runs: int = 2
    quiet_wait: float = 30.0
    noise_budget: float = 240.0

    @property
    def nodeport(self) -> bool:
        return NODEPORT in self.paths

    def estimate_seconds(self) -> int:
        per_target = self.repeats * 2 * (self.seconds + 2) + self.warmup_seconds + 3
        direct = 1 if CLUSTERIP in self.paths else 0
        targets = len(self.labs) * (direct + len(self.counts) * len(self.paths))
        # Creating 10,000 NodePort Services took 435 s on this busy 2-vCPU machine
        # (bench/results/l4-2026-12-06-quick-nodeport-busy-*); 60 s for ClusterIP ones is
        # this estimate's earlier figure, not re-measured since the lab API server.
        sync = ((435 if self.nodeport else 60) * max(self.counts) / 10_000
                if TULLE in self.labs else 0)
        return int(targets * per_target + sync + 40 * len(self.labs))
