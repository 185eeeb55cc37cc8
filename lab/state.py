"""Where a lab keeps its files: store, topology, process records, health and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.files import read_json, write_json_atomic

__all__ = [
    "BPF_PIN_ROOT",
    "DEFAULT_LAB",
    "LabPaths",
    "pin_dir",
    "read_json",
    "state_root",
    "write_json_atomic",
]

DEFAULT_LAB = "lab"
BPF_PIN_ROOT = Path("/sys/fs/bpf/tulle")


def state_root() -> Path:
    return Path(os.environ.get("TULLE_STATE_DIR", "/run/tulle"))


def pin_dir(lab: str, node: str) -> Path:
    """Where a lab node's agent pins its maps (its and its waypoint's ``--pin-dir``)."""
    return BPF_PIN_ROOT / lab / node


@dataclass(frozen=True, slots=True)
class LabPaths:
    name: str
    root: Path

    @classmethod
    def for_lab(cls, name: str) -> LabPaths:
        return cls(name=name, root=state_root() / name)

    @property
    def lab_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def procs(self) -> Path:
        return self.root / "procs"

    @property
    def health(self) -> Path:
        return self.root / "health"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def relay_socket(self) -> Path:
        return self.root / "relay.sock"

    def pod_log(self, namespace: str, pod: str, container: str) -> Path:
        return self.logs / "pods" / f"{namespace}_{pod}_{container}.log"

    def make_dirs(self) -> None:
        for d in (self.root, self.procs, self.health, self.logs, self.logs / "pods"):
            d.mkdir(parents=True, exist_ok=True)
