"""Which SVIDs a node holds and when to ask for them (pure: no clock, no I/O, no randomness
of its own; times are seconds since the epoch, passed in).

- ``needed(pods, namespaces, node)``: the workloads (namespace, ServiceAccount) whose SVIDs
  this node needs: pods scheduled on it (``spec.nodeName``), not finished (phase Succeeded
  or Failed: a finished pod opens no connection), in a namespace enrolled by label
  (``identity.peerauth.enrolled``); the ServiceAccount ``default`` when unset. Only these:
  the CA refuses anything else (node authorization), and asking would only be refused.
- ``decide(now, needed, held, roots, ...)``: what to fetch now and what to drop. Fetch: an
  identity needed and not held (``missing``), held but signed under a root no longer in the
  bundle (``root-removed``: peers would refuse it), expired, or at/past half-life
  (``renew``, ``identity.bundle.renew_at``); each unless its back-off since a failure has
  not run out. Drop: held but not needed for ``grace`` seconds (a pod restarting or moving
  between lists must not lose and refetch its identity); the grace starts at the first
  round that found it unneeded.
- ``retry_after(failures, now, rand)``: when to try again after the n-th failure in a row:
  capped exponential back-off with jitter (``agent.kube.backoff.Backoff``): 1 s, 2 s, 4 s...
  up to 5 minutes, each between half and all of that, so the agents a CA outage refused
  together do not come back together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.kube.backoff import Backoff
from identity.peerauth import enrolled
from identity.spiffe import DEFAULT_SERVICE_ACCOUNT

Workload = tuple[str, str]  # (namespace, ServiceAccount)
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
DROP_GRACE = 60.0  # seconds an SVID outlives the last pod of its identity on the node
RETRY = Backoff(initial=1.0, cap=300.0)


@dataclass(frozen=True, slots=True)
class Held:
    """An SVID the node holds: its leaf's validity and serial, the fingerprint (SHA-256,
    hex) of the bundle root its chain ends under, and when the node received it."""

    spiffe_id: str
    serial: int
    not_before: float
    not_after: float
    root: str
    received: float = 0.0

    @property
    def renew_at(self) -> float:
        """Half of its life (``identity.bundle.renew_at``), counted from when it was
        received when that is later than notBefore: the CA backdates notBefore by a minute
        (``identity.ca.CLOCK_SKEW``), so a 60 s SVID's half-life after notBefore would be the
        moment it arrives, and the node would renew it for ever. At 24 h the two differ by
        30 s."""
        start = max(self.not_before, self.received)
        return start + (self.not_after - start) / 2


@dataclass(frozen=True, slots=True)
class Retry:
    """A workload whose last fetch failed: how many failures in a row, and not before when."""

    failures: int
    at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now: ``fetch`` (workload, reason) in a stable order, ``drop`` the workloads
    whose grace ran out, ``unneeded`` the held-but-unneeded ones with the time each was first
    found so (the caller keeps it for the next round), ``wake_at`` the earliest time a later
    round has something to do (None: nothing scheduled; a change wakes the caller)."""

    fetch: tuple[tuple[Workload, str], ...] = ()
    drop: tuple[Workload, ...] = ()
    unneeded: Mapping[Workload, float] = field(default_factory=dict)
    wake_at: float | None = None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def needed(
    pods: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]], node: str
) -> frozenset[Workload]:
    """The (namespace, ServiceAccount) pairs this node's enrolled, unfinished pods run as."""
    enrolled_ns = {
        (ns.get("metadata") or {}).get("name") for ns in namespaces if enrolled(_labels(ns))
    }
    found: set[Workload] = set()
    for pod in pods:
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace")
        if spec.get("nodeName") != node or not namespace or namespace not in enrolled_ns:
            continue
        if (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
            continue
        found.add((str(namespace), str(spec.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT)))
    return frozenset(found)


def _why_fetch(held: Held | None, roots: frozenset[str], now: float) -> str | None:
    if held is None:
        return "missing"
    if held.root not in roots:
        return "root-removed"
    if now >= held.not_after:
        return "expired"
    if now >= held.renew_at:
        return "renew"
    return None


def decide(
    now: float,
    need: frozenset[Workload],
    held: Mapping[Workload, Held],
    roots: frozenset[str],
    retries: Mapping[Workload, Retry] | None = None,
    unneeded_since: Mapping[Workload, float] | None = None,
    grace: float = DROP_GRACE,
) -> Decision:
    """This round's fetches and drops (see the module docstring). ``roots``: fingerprints
    of the bundle's roots now; ``retries``: the workloads in back-off."""
    retries = retries or {}
    unneeded_since = unneeded_since or {}
    fetch: list[tuple[Workload, str]] = []
    wakes: list[float] = []
    for workload in sorted(need):
        current = held.get(workload)
        reason = _why_fetch(current, roots, now)
        retry = retries.get(workload)
        if reason is not None and retry is not None and now < retry.at:
            wakes.append(retry.at)  # in back-off: try when it ends
        elif reason is not None:
            fetch.append((workload, reason))
        elif current is not None:
            wakes.append(current.renew_at)
    drop: list[Workload] = []
    unneeded: dict[Workload, float] = {}
    for workload in sorted(set(held) - need):
        since = unneeded_since.get(workload, now)
        if now >= since + grace:
            drop.append(workload)
        else:
            unneeded[workload] = since
            wakes.append(since + grace)
    return Decision(tuple(fetch), tuple(drop), unneeded, min(wakes) if wakes else None)


def retry_after(
    failures: int, now: float, rand: Callable[[], float], backoff: Backoff = RETRY
) -> Retry:
    """The back-off after the ``failures``-th failure in a row (1 for the first)."""
    return Retry(failures, now + backoff.delay(failures, rand))
