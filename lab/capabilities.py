"""A container's capabilities, as a node's runtime bounds them (pure but for ``known``).

containerd's CRI plugin gives a container its default set (``DEFAULT``: containerd's
``defaultUnixCaps``, Docker's too), then applies ``securityContext.capabilities``: an ``ALL``
in ``add`` grants every capability, an ``ALL`` in ``drop`` empties the set, then each other
name is added, then each other name dropped. Names are read upper-cased with a ``CAP_`` prefix
when it is missing; a name the kernel does not have fails the start. ``privileged: true``
grants every capability.

The lab runs the container's command under ``setpriv`` (util-linux) with that set as its
bounding set and no inheritable or ambient capability: a process run as root then holds
exactly that set, as in a container, so a manifest's ``add`` list is tested by every lab
that installs from it. ``allowPrivilegeEscalation: false`` is ``--no-new-privs``.

Lab deviation (lab/README.md): a container that sets neither ``capabilities`` nor
``privileged`` keeps the kubelet's own capabilities (the lab's echo and test pods were
written for that), instead of the runtime's default set.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable, Sequence

from agent.model.core_container import SecurityContext

# containerd pkg/oci/spec.go defaultUnixCaps (and Docker's default).
DEFAULT = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})


class CapabilityError(ValueError):
    """A capability name the kernel does not know: the container cannot start."""


def normalized(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") or upper == "ALL" else f"CAP_{upper}"


def granted(context: SecurityContext | None, every: frozenset[str]) -> frozenset[str] | None:
    """The capabilities the container's process holds, from ``every`` capability the kernel
    has; None when the container asks nothing of them (the lab's deviation: unbounded)."""
    if context is None or (context.capabilities is None and not context.privileged):
        return None
    if context.privileged:
        return every
    caps = context.capabilities
    assert caps is not None
    add = [normalized(n) for n in caps.add]
    drop = [normalized(n) for n in caps.drop]
    unknown = sorted({n for n in (*add, *drop) if n != "ALL" and n not in every})
    if unknown:
        raise CapabilityError(f"unknown capabilit{'y' if len(unknown) == 1 else 'ies'} "
                              f"{', '.join(unknown)}")
    held = set(every if "ALL" in add else DEFAULT & every)
    if "ALL" in drop:
        held.clear()
    held.update(n for n in add if n != "ALL")
    held.difference_update(n for n in drop if n != "ALL")
    return frozenset(held)


def setpriv_argv(held: Iterable[str], *, no_new_privs: bool = False) -> list[str]:
    """The ``setpriv`` prefix that runs a command with exactly ``held`` (for root)."""
    bound = ",".join(["-all", *(f"+{n.removeprefix('CAP_').lower()}" for n in sorted(held))])
    return ["setpriv", f"--bounding-set={bound}", "--inh-caps=-all", "--ambient-caps=-all",
            *(["--no-new-privs"] if no_new_privs else []), "--"]


def bounded(argv: Sequence[str], context: SecurityContext | None,
            every: frozenset[str]) -> list[str]:
    """``argv`` run with the capabilities ``context`` grants (unchanged when it grants all
    or asks nothing); CapabilityError for a name the kernel does not know."""
    held = granted(context, every)
    no_new_privs = context is not None and context.allow_privilege_escalation is False
    if held is None or (held == every and not no_new_privs):
        return list(argv)
    return [*setpriv_argv(held, no_new_privs=no_new_privs), *argv]


def problem(context: SecurityContext | None, every: frozenset[str]) -> str:
    """Why the runtime would refuse to start the container, else ""."""
    try:
        granted(context, every)
    except CapabilityError as err:
        return f"failed to create containerd container: {err}"
    return ""


@functools.cache
def known() -> frozenset[str]:
    """Every capability this kernel has, by name (``setpriv --list-caps`` reads the kernel's
    ``cap_last_cap``)."""
    out = subprocess.run(["setpriv", "--list-caps"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return frozenset(f"CAP_{line.strip().upper()}" for line in out.splitlines() if line.strip())
