"""Which NetworkPolicies allowed a connection: policy set ids and their names.

Hubble names the policies behind a verdict (``ingress_allowed_by``, ``egress_allowed_by``).
The kernel cannot carry names, so every policy map value carries a small id (``PortRule.policy``,
the ``policy`` field of ``struct port_rule`` in bpf/lib/policy.h) for its *provenance*: the
(policy, rule as that policy wrote it) pairs the value was compiled from. ``policy_allows``
returns the id of the value that matched, the NEW flow event carries it, and the agent names
the policies whose own rules match the connection's protocol and port, so a value merged from
two policies (A allows 80, B allows 443) names only A for port 80.

Ids are a 16-bit hash of the provenance, not a counter: the same provenance gets the same id
in every agent and after a restart, so a restarted agent names what the previous one wrote.
Two provenances may share an id (a 16-bit hash); the registry keeps both and names the
policies of either that match the port, which only over-names, in that rare case, policies of
the same id. The registry is bounded (least recently compiled ids go first) and filled by
``compile_policy`` as it assigns ids, so the flow decoder of the same process can read it.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable

from agent.datapath.policy_ports import PortRule

Grant = tuple[str, PortRule]
"""("namespace/name" of a NetworkPolicy, one port rule it grants)."""
Provenance = frozenset[Grant]

MAX_ID = 0xFFFF
DEFAULT_CAPACITY = 16384


def provenance_id(provenance: Provenance) -> int:
    """1..65535, stable across processes; 0 is kept for "no policy known"."""
    text = "\n".join(
        sorted(f"{name} {r.protocol} {r.first} {r.last}" for name, r in provenance)
    )
    return zlib.crc32(text.encode()) % MAX_ID + 1


class PolicyNames:
    """Bounded id -> provenances registry (thread-safe: compiled in one thread, read in
    another)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._by_id: OrderedDict[int, tuple[Provenance, ...]] = OrderedDict()
        self._ids: dict[Provenance, int] = {}  # memo: every compile learns every value again
        self._lock = threading.Lock()

    def learn(self, grants: Iterable[Grant]) -> int:
        """The id of this provenance, remembered for ``allowed_by``."""
        provenance = frozenset(
            (name, r if not r.policy else PortRule(r.protocol, r.first, r.last))
            for name, r in grants
        )
        if not provenance:
            return 0
        pid = self._ids.get(provenance)
        if pid is None:
            pid = provenance_id(provenance)
            if len(self._ids) >= self.capacity:
                self._ids.clear()
            self._ids[provenance] = pid
        with self._lock:
            known = self._by_id.pop(pid, ())
            if provenance not in known:
                known = (*known[-3:], provenance)  # a few colliding provenances at most
            self._by_id[pid] = known
            while len(self._by_id) > self.capacity:
                self._by_id.popitem(last=False)
        return pid

    def allowed_by(self, pid: int, protocol: int, port: int) -> tuple[str, ...]:
        """"namespace/name" of the policies of id ``pid`` that allow (protocol, port),
        sorted; () for an id this process never compiled."""
        with self._lock:
            known = self._by_id.get(pid, ())
        return tuple(
            sorted({name for p in known for name, rule in p if rule.matches(protocol, port)})
        )


REGISTRY = PolicyNames()
"""The agent's registry: ``compile_policy`` fills it, the flow decoder reads it."""
