"""Where a lab keeps its files: store, topology, process records, health and logs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LAB = "lab"


def state_root() -> Path:
    return Path(os.environ.get("TULLE_STATE_DIR", "/run/tulle"))


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

    def observer_socket(self, node: str) -> Path:
        return self.root / f"observer-{node}.sock"

    def l7_intake_socket(self, node: str) -> Path:
        return self.root / "l7intake" / f"{node}.sock"  # a private (0700) directory

    @property
    def relay_socket(self) -> Path:
        return self.root / "relay.sock"

    def pod_log(self, namespace: str, pod: str, container: str) -> Path:
        return self.logs / "pods" / f"{namespace}_{pod}_{container}.log"

    def make_dirs(self) -> None:
        for d in (self.root, self.procs, self.health, self.logs, self.logs / "pods"):
            d.mkdir(parents=True, exist_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
