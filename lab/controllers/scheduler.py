"""Scheduler (pure): choose a node for each unscheduled Pod."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from agent.model.core import Pod

HOSTNAME_LABEL = "kubernetes.io/hostname"


class Unschedulable(ValueError):
    pass


def pick_node(pod: Pod, nodes: Sequence[str], load: Counter[str]) -> str:
    """Honour nodeSelector on the hostname label, then spread: fewest Pods, then name."""
    wanted = pod.spec.node_selector.get(HOSTNAME_LABEL)
    candidates = [n for n in nodes if wanted is None or n == wanted]
    if not candidates:
        raise Unschedulable(f"0/{len(nodes)} nodes match nodeSelector {HOSTNAME_LABEL}={wanted}")
    return min(candidates, key=lambda n: (load[n], n))


def schedule(
    pods: Sequence[Pod], nodes: Sequence[str]
) -> tuple[list[tuple[Pod, str]], list[tuple[Pod, str]]]:
    """(bindings, unschedulable with reasons) for every Pod without spec.nodeName."""
    load: Counter[str] = Counter(p.spec.node_name for p in pods if p.spec.node_name)
    bindings, unschedulable = [], []
    for pod in sorted(pods, key=lambda p: (p.metadata.namespace, p.metadata.name)):
        if pod.spec.node_name:
            continue
        try:
            node = pick_node(pod, nodes, load)
        except Unschedulable as err:
            unschedulable.append((pod, str(err)))
            continue
        load[node] += 1
        bindings.append((pod, node))
    return bindings, unschedulable
