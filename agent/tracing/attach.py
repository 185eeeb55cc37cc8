"""Attach tracing programs to their hooks by fd, without BCC, and name them as BCC does.

A tracer, compiled or adopted from its pins (``agent.tracing.cache``), attaches each program
itself: a classic tracepoint through a perf event (``agent.datapath.perf``), a raw tracepoint
through libbpf's ``bpf_raw_tracepoint_open``. Either way the attachment is one fd: closing it
detaches (the pause switch, and the agent's exit: pinned programs stay loaded, run nowhere).
"""

from __future__ import annotations

import os

from agent.datapath.native import raw_tracepoint_open
from agent.datapath.perf import attach_tracepoint


def split_hook(hook: str) -> tuple[str, str, str]:
    """("tracepoint", category, event) or ("raw_tracepoint", "", event) from a plan's hook
    name (``tracepoint:sock:inet_sock_set_state``, ``raw_tracepoint:tcp_probe``). Pure."""
    kind, _, rest = hook.partition(":")
    if kind == "tracepoint":
        category, _, event = rest.partition(":")
        if category and event and ":" not in event:
            return kind, category, event
    elif kind == "raw_tracepoint" and rest and ":" not in rest:
        return kind, "", rest
    raise ValueError(f"not a tracepoint hook: {hook!r}")


def program_name(hook: str) -> str:
    """The C function BCC's TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE defines for ``hook``
    (the program's name, and its pin's). Pure."""
    kind, category, event = split_hook(hook)
    if kind == "tracepoint":
        return f"tracepoint__{category}__{event}"
    return f"raw_tracepoint__{event}"


def attach_raw_tracepoint(prog_fd: int, event: str) -> int:
    """Run ``prog_fd`` on raw tracepoint ``event``; the returned fd holds it there."""
    return raw_tracepoint_open(event.encode(), prog_fd)


def attach(hook: str, prog_fd: int) -> int:
    """Attach ``prog_fd`` to a plan's ``hook``; close the returned fd to detach."""
    kind, category, event = split_hook(hook)
    if kind == "tracepoint":
        return attach_tracepoint(prog_fd, category, event)
    return attach_raw_tracepoint(prog_fd, event)


class Hooks:
    """A plan's hooks and their programs: attached (one fd each) or not."""

    def __init__(self, prog_fds: dict[str, int]) -> None:
        self.prog_fds = dict(prog_fds)  # hook -> program fd (not ours to close)
        self.links: dict[str, int] = {}  # hook -> attachment fd (ours)

    def set(self, on: bool) -> None:
        """Attach every hook (idempotent) or detach every one. An attach that fails detaches
        what this call attached and raises, naming the hook."""
        if not on:
            self.close()
            return
        added = []
        try:
            for hook, prog_fd in self.prog_fds.items():
                if hook not in self.links:
                    self.links[hook] = attach(hook, prog_fd)
                    added.append(hook)
        except (OSError, ValueError):
            for hook in added:
                os.close(self.links.pop(hook))
            raise

    @property
    def attached(self) -> tuple[str, ...]:
        return tuple(self.links)

    def close(self) -> None:
        while self.links:
            _, fd = self.links.popitem()
            os.close(fd)
