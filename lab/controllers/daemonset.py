"""DaemonSet controller (pure): the Pods a DaemonSet should have on each node, the ones to
delete, and its status, as Kubernetes' DaemonSet controller (pkg/controller/daemon) plans.

- One pod per node that should run it: the template's ``nodeSelector`` matches the node's
  labels. The pod names its node in ``spec.nodeName`` (no scheduler pass), is owned through
  ``ownerReferences`` and labelled ``controller-revision-hash`` with the template's hash.
  A lab node has no taints, so tolerations decide nothing here.
- Extra pods on a node, pods on nodes that should not run one and Failed pods are deleted;
  the next round recreates what is missing.
- ``RollingUpdate`` (maxSurge 0): old pods are deleted while the nodes that are unavailable
  stay within ``maxUnavailable`` (an int or a percentage of the desired count, rounded up;
  default 1); an old pod that is not available anyway may always go. Nodes are taken in name
  order, so a rollout goes node by node. ``OnDelete``: only pods that are gone are replaced
  (with the current template).
- Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
  numberAvailable (= ready: ``minReadySeconds`` is not honoured), numberUnavailable,
  updatedNumberScheduled, observedGeneration.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.model.convert import ConversionError, from_dict
from agent.model.convert_meta import read_label_selector
from agent.model.core import Pod, PodPhase
from agent.model.meta import LabelSelector
from agent.model.reader import REQUIRED, FieldError, Reader
from lab.controllers.deployment import generated_name, is_ready

REVISION_HASH = "controller-revision-hash"
STRATEGIES = ("RollingUpdate", "OnDelete")
NodeLabels = Mapping[str, Mapping[str, str]]  # node name -> its labels


class InvalidDaemonSet(ValueError):
    """A DaemonSet the controller cannot act on; the message names the object and field."""


@dataclass(frozen=True, slots=True)
class DaemonSet:
    """What the controller reads of a served DaemonSet (the template stays as served)."""

    namespace: str
    name: str
    uid: str
    generation: int
    selector: LabelSelector
    template: dict[str, Any]
    node_selector: Mapping[str, str]
    strategy: str = "RollingUpdate"
    max_unavailable: int | str = 1


@dataclass(frozen=True, slots=True)
class DaemonSetPlan:
    create: tuple[dict[str, Any], ...] = ()
    delete: tuple[Pod, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)


def read_daemonset(obj: Mapping[str, Any]) -> DaemonSet:
    """The DaemonSet as the controller needs it; raises InvalidDaemonSet on what the API
    server would have refused (no selector, a selector that misses the template's labels,
    an unknown strategy) or a template no Pod could be made from."""
    meta = obj.get("metadata") or {}
    ref = f"DaemonSet {meta.get('namespace', '')}/{meta.get('name', '')}"
    try:
        return _read(Reader(obj.get("spec") or {}, "spec"), meta)
    except FieldError as err:
        raise InvalidDaemonSet(f"{ref}: {err}") from None
    except ConversionError as err:
        raise InvalidDaemonSet(f"{ref}: spec.template: {err}") from None


def _read(r: Reader, meta: Mapping[str, Any]) -> DaemonSet:
    selector = r.obj("selector", read_label_selector, REQUIRED)
    if selector.is_empty:
        r.fail("selector", "empty selector is invalid for a DaemonSet")
    template = r.child("template").data
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector.matches(labels):
        r.fail("template.metadata.labels", "`selector` does not match template `labels`")
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "template", "namespace": meta.get("namespace", "")},
                     "spec": template.get("spec") or {}})
    assert isinstance(pod, Pod)
    if pod.spec.restart_policy != "Always":
        r.fail("template.spec.restartPolicy",
               f'unsupported value "{pod.spec.restart_policy}" (supported: Always)')
    strategy = r.child("updateStrategy")
    kind = strategy.string("type", "RollingUpdate")
    if kind not in STRATEGIES:
        strategy.fail("type", f'unsupported value "{kind}" (supported: {", ".join(STRATEGIES)})')
    rolling = strategy.child("rollingUpdate")
    max_unavailable = rolling.int_or_string("maxUnavailable")
    if max_unavailable is None:
        max_unavailable = 1
    if isinstance(max_unavailable, int) and max_unavailable < 0:
        rolling.fail("maxUnavailable", "must be greater than or equal to 0")
    if isinstance(max_unavailable, str) and not _percent(max_unavailable):
        rolling.fail("maxUnavailable", f'invalid value "{max_unavailable}": '
                     "must be an integer or a percentage (e.g. '10%')")
    if kind == "RollingUpdate" and max_unavailable in (0, "0%") and not _surge(rolling):
        rolling.fail("maxUnavailable", "may not be 0 when maxSurge is 0")
    return DaemonSet(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        selector=selector,
        template=dict(template),
        node_selector=dict(pod.spec.node_selector),
        strategy=kind,
        max_unavailable=max_unavailable,
    )


def _percent(value: str) -> bool:
    return value.endswith("%") and value[:-1].isdigit()


def _surge(rolling: Reader) -> bool:
    """maxSurge set above 0: surging is not run here (one pod per node, as maxSurge 0)."""
    surge = rolling.data.get("maxSurge")
    return surge not in (None, 0, "0%")


def template_hash(ds: DaemonSet) -> str:
    text = json.dumps(ds.template, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def should_run(ds: DaemonSet, labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in ds.node_selector.items())


def owned_by(pod: Pod, uid: str) -> bool:
    return any(r.uid == uid and r.controller for r in pod.metadata.owner_references)


def pod_for(ds: DaemonSet, node: str, thash: str, suffix: str) -> dict[str, Any]:
    meta = ds.template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), REVISION_HASH: thash}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": generated_name(f"{ds.name}-", suffix),
            "namespace": ds.namespace,
            "labels": labels,
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "name": ds.name,
                "uid": ds.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": {**(ds.template.get("spec") or {}), "nodeName": node},
    }


def _oldest_first(pods: Sequence[Pod]) -> list[Pod]:
    def key(p: Pod) -> tuple[float, str]:
        created = p.metadata.creation_timestamp
        return (created.timestamp() if created else 0.0, p.metadata.name)

    return sorted(pods, key=key)


def max_unavailable(ds: DaemonSet, desired: int) -> int:
    value = ds.max_unavailable
    if isinstance(value, str):
        value = math.ceil(int(value[:-1]) * desired / 100)
    return value if value > 0 else 1  # 0 with maxSurge: surging is not run, one at a time


def plan_daemonset(
    ds: DaemonSet,
    nodes: NodeLabels,
    pods: Sequence[Pod],
    suffix: Callable[[], str] = lambda: secrets.token_hex(3)[:5],
) -> DaemonSetPlan:
    thash = template_hash(ds)
    owned = [p for p in pods if owned_by(p, ds.uid)]
    failed = [p for p in owned if p.status.phase == PodPhase.FAILED]
    on_node: dict[str, list[Pod]] = {}
    for pod in owned:
        if pod not in failed:
            on_node.setdefault(pod.spec.node_name or "", []).append(pod)
    create: list[dict[str, Any]] = []
    delete: list[Pod] = list(failed)
    status = {"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0,
              "numberReady": 0, "numberAvailable": 0, "updatedNumberScheduled": 0}
    running: dict[str, Pod] = {}  # node -> its one pod, on the nodes that should run one
    for node in sorted(set(nodes) | set(on_node)):
        here = _oldest_first(on_node.get(node, []))
        if node not in nodes or not should_run(ds, nodes[node]):
            delete += here
            status["numberMisscheduled"] += bool(here)
            continue
        status["desiredNumberScheduled"] += 1
        if not here:
            create.append(pod_for(ds, node, thash, suffix()))
            continue
        status["currentNumberScheduled"] += 1
        first, extra = here[0], here[1:]
        delete += extra  # upstream keeps the oldest pod of a node and deletes the others
        running[node] = first
        if is_ready(first):
            status["numberReady"] += 1
            status["numberAvailable"] += 1
        if first.metadata.labels.get(REVISION_HASH) == thash:
            status["updatedNumberScheduled"] += 1
    if ds.strategy == "RollingUpdate":
        desired = status["desiredNumberScheduled"]
        delete += _rolling(running, len(create), thash, max_unavailable(ds, desired))
    status["numberUnavailable"] = status["desiredNumberScheduled"] - status["numberAvailable"]
    status["observedGeneration"] = ds.generation
    return DaemonSetPlan(create=tuple(create), delete=tuple(delete), status=status)


def _rolling(running: Mapping[str, Pod], missing: int, thash: str, budget: int) -> list[Pod]:
    """The old pods to delete now (upstream's rollingUpdate with maxSurge 0). A node without
    its pod, or whose new pod is not ready yet, counts against the budget; an old pod that
    is unavailable anyway is replaced at once, outside the budget, as upstream does (its
    node is down already)."""
    unavailable = missing
    candidates: list[Pod] = []
    replace_now: list[Pod] = []
    for node in sorted(running):
        pod = running[node]
        if pod.metadata.labels.get(REVISION_HASH) == thash:
            unavailable += not is_ready(pod)
        elif not is_ready(pod):
            replace_now.append(pod)
        else:
            candidates.append(pod)
    room = max(0, budget - unavailable)
    return replace_now + candidates[:room]


def orphans(pods: Sequence[Pod], daemonset_uids: set[str]) -> list[Pod]:
    """Pods whose owning DaemonSet is gone: garbage, as the GC controller would find."""
    return [
        p for p in pods
        if any(r.kind == "DaemonSet" and r.controller for r in p.metadata.owner_references)
        and not any(r.uid in daemonset_uids for r in p.metadata.owner_references)
    ]
