"""The node's datapath programs: compile once, pin every map under the node's pin dir.

Loading again with the same pin dir adopts the pinned maps (conntrack, services, policy),
which is what lets a restarted agent replace programs without resetting connections.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.datapath.bpf_loader import BPF, BPF_DIR, load_fn, load_program

PROGRAM_SOURCES = (BPF_DIR / "from_pod.c", BPF_DIR / "to_pod.c")
FROM_POD = "tulle_from_pod"
TO_POD = "tulle_to_pod"


@dataclass
class Datapath:
    bpf: BPF
    pin_dir: Path
    from_pod_fd: int
    to_pod_fd: int

    def table(self, name: str) -> Any:
        return self.bpf[name.encode()]

    def event(self, data: Any) -> Any:
        """A ring-buffer record as `struct flow_event` (BCC's ctypes for it), copied out."""
        leaf = self.table("flow_event_layout").Leaf
        return leaf.from_buffer_copy(ctypes.string_at(data, ctypes.sizeof(leaf)))

    def events_lost(self) -> int:
        """Flow events the kernel could not queue (ring full), ever: the per-CPU sum of the
        pinned ``events_lost_v1``."""
        table = self.table("events_lost_v1")
        return int(sum(table.getvalue(table.Key(0))))

    def close(self) -> None:
        """Release our handles; attached programs and pinned maps live on in the kernel."""
        self.bpf.cleanup()


def load_datapath(pin_dir: Path, *, debug_dump_path: Path | None = None) -> Datapath:
    pin_dir.mkdir(parents=True, exist_ok=True)
    bpf = load_program(
        list(PROGRAM_SOURCES),
        [f'-DTULLE_PIN_DIR="{pin_dir}"'],
        debug_dump_path=debug_dump_path,
    )
    return Datapath(
        bpf=bpf,
        pin_dir=pin_dir,
        from_pod_fd=load_fn(bpf, FROM_POD, BPF.SCHED_CLS).fd,
        to_pod_fd=load_fn(bpf, TO_POD, BPF.SCHED_CLS).fd,
    )
