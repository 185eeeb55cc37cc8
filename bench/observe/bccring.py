"""BCC's ring buffer as the ingestion benchmark drives it: a callback that only counts
records, and forgetting BCC's ring-buffer manager between one ``open_ring_buffer`` and the
next (the controller's ``run_events`` opens its own)."""

from __future__ import annotations

from typing import Any

from bcc.libbcc import lib as bcc_lib

from agent.datapath.programs import Datapath


class Count:
    """A ring-buffer callback that counts records and keeps none."""


    def __init__(self) -> None:
        self.n = 0

    def on_event(self, _ctx: Any, _data: Any, _size: int) -> int:
        self.n += 1
        # Polls end per batch, as the reader's do; and BCC converts the result with int(),
        # so None would raise (and be caught) on every record.
        return 0 if self.n % 8192 else -1

    def count(self, batch: list[bytes]) -> int:
        self.n += len(batch)
        return len(batch)

    def consume_all(self, dp: Datapath) -> None:
        """Consume until the ring is empty (one consume stops at a full batch)."""
        while True:
            before = self.n
            dp.bpf.ring_buffer_consume()
            if self.n == before:
                return


def close_ring(dp: Datapath) -> None:
    """Forget BCC's ring-buffer manager, so the next `open_ring_buffer` (run_events opens
    its own) starts a fresh one instead of adding the same ring a second time."""
    manager = dp.bpf._ringbuf_manager
    if manager:
        bcc_lib.bpf_free_ringbuf(manager)
        dp.bpf._ringbuf_manager = None
