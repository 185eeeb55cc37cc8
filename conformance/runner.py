"""Runs cases against a lab: skips the cases whose kinds the lab does not serve, applies the
manifests of the others at once (each case owns its hostname, path prefix or gRPC service),
waits for their pods, runs each check and records its outcome, then deletes what it applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from conformance.case import Case, CaseFailed, CaseResult, Outcome
from conformance.lab import Lab, eventually

_FIRST = ("Namespace", "Service", "Deployment", "ReferenceGrant", "Gateway")


def plan_manifests(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """The union of the cases' manifests, each object once (by kind, namespace and name; a
    second, different definition of one object is a bug in the cases), namespaces first."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for case in cases:
        for obj in case.manifests:
            meta = obj["metadata"]
            key = (obj["kind"], meta.get("namespace", ""), meta["name"])
            if key in seen and seen[key] != obj:
                raise ValueError(f"case {case.name}: {key} differs from another case's")
            seen[key] = obj
    order = {kind: i for i, kind in enumerate(_FIRST)}
    return sorted(seen.values(), key=lambda o: order.get(o["kind"], len(_FIRST)))


def _pods_ready(lab: Lab, namespaces: Sequence[str], want: dict[str, int]) -> None:
    for ns in namespaces:
        pods = lab.get("pods", ns)
        ready = [p for p in pods if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions", []))]
        if len(ready) < want[ns]:
            raise CaseFailed(f"{len(ready)} of {want[ns]} pods ready in {ns}")


def run(lab: Lab, cases: Sequence[Case], progress: Callable[[str], None] = print,
        keep: bool = False) -> list[CaseResult]:
    kinds = sorted({k for c in cases for k in c.kinds})
    served = {k: lab.serves(k) for k in kinds}
    results: dict[str, CaseResult] = {}
    runnable = []
    for case in cases:
        missing = [k for k in case.kinds if not served[k]]
        if missing:
            results[case.name] = CaseResult.of(case, "skipped", f"{missing} not served")
        else:
            runnable.append(case)
    if missing_kinds := [k for k, ok in served.items() if not ok]:
        progress(f"not served by this lab, their cases skipped: {', '.join(missing_kinds)}")
    objects = plan_manifests(runnable)
    progress(f"applying {len(objects)} objects for {len(runnable)} cases")
    lab.apply(objects)
    try:
        want: dict[str, int] = {}
        for o in objects:
            if o["kind"] == "Deployment":
                ns = o["metadata"]["namespace"]
                want[ns] = want.get(ns, 0) + int(o["spec"].get("replicas", 1))
        eventually(lambda: _pods_ready(lab, sorted(want), want), timeout=180, interval=1)
        for case in runnable:
            start = time.monotonic()
            outcome: Outcome
            try:
                case.check(lab)
            except CaseFailed as err:
                outcome, detail = "failed", str(err)
            except Exception as err:  # a broken check is a failed case, named, not a crash
                outcome, detail = "failed", f"{type(err).__name__}: {err}"
            else:
                outcome, detail = "passed", ""
            took = time.monotonic() - start
            results[case.name] = CaseResult.of(case, outcome, detail, took)
            progress(f"{outcome.upper():7} {case.profile:12} {case.name} ({took:.1f}s)"
                     + (f": {detail}" if detail else ""))
    finally:
        if not keep:
            lab.delete([o for o in reversed(objects) if o["kind"] != "Namespace"])
            lab.delete([o for o in objects if o["kind"] == "Namespace"])
    return [results[c.name] for c in cases]
