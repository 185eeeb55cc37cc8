"""Attach tracing programs to their hooks by fd, without BCC, and name them as BCC does.

A tracer, compiled or adopted from its pins (``agent.tracing.cache``), attaches each program
itself: a classic tracepoint through a perf event (``agent.datapath.perf``), a raw tracepoint
through libbpf's ``bpf_raw_tracepoint_open``. Either way the attachment is one fd: closing it
detaches (the pause switch, and the agent's exit: pinned programs stay loaded, run nowhere).
The sock_ops program (``sock_ops:pod_cgroup``) goes on the node's pod cgroup instead
(``agent.tracing.cgroup``): that attachment outlives our fds, so pausing and stopping detach it
explicitly, and attaching skips a program the kernel already has there.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.datapath.native import raw_tracepoint_open
from agent.datapath.perf import attach_tracepoint
from agent.tracing.cgroup import CgroupAttachment

SOCKOPS = "sock_ops:pod_cgroup"  # trace_sockops.c on the pod cgroup: connections, RTT
SOCKOPS_FN = "trace_sockops"


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
    if hook == SOCKOPS:
        return SOCKOPS_FN
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
    """A plan's hooks and their programs: attached (one fd each; the sock_ops hook on
    ``cgroup``) or not."""

    def __init__(self, prog_fds: dict[str, int], cgroup: Path | None = None) -> None:
        self.prog_fds = dict(prog_fds)  # hook -> program fd (not ours to close)
        self.links: dict[str, int] = {}  # hook -> attachment fd (ours); -1: on the cgroup
        self.cgroup = (CgroupAttachment(cgroup, self.prog_fds[SOCKOPS], SOCKOPS_FN)
                       if cgroup is not None and SOCKOPS in self.prog_fds else None)
        if SOCKOPS in self.prog_fds and self.cgroup is None:
            raise ValueError(f"{SOCKOPS} needs the pod cgroup to attach to")

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
                    if hook == SOCKOPS and self.cgroup is not None:
                        self.cgroup.attach()
                        self.links[hook] = -1
                    else:
                        self.links[hook] = attach(hook, prog_fd)
                    added.append(hook)
        except (OSError, ValueError):
            for hook in added:
                self._detach(hook)
            raise

    @property
    def attached(self) -> tuple[str, ...]:
        return tuple(self.links)

    def _detach(self, hook: str) -> None:
        fd = self.links.pop(hook)
        if fd >= 0:
            os.close(fd)
        elif self.cgroup is not None:
            self.cgroup.detach()

    def close(self) -> None:
        errors = []
        while self.links:
            try:
                self._detach(next(iter(self.links)))
            except OSError as err:  # the other hooks still go
                errors.append(err)
        if errors:
            raise errors[0]
