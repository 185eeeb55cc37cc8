"""Init containers as a kubelet runs them (pure): one after another, each to exit 0 before
the next and before any app container starts. One that fails is started again with
back-off under restartPolicy Always or OnFailure; under Never the pod fails. What the pod's
status says of them: ``initContainerStatuses``, the Initialized condition and the phase
(Pending until all have succeeded), which ``kubectl get pods`` turns into ``Init:1/3``,
``Init:Error`` or ``Init:CrashLoopBackOff`` (lab/apiserver/pod_columns.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class InitState(Protocol):
    """What the plan reads of an init container (lab.podruntime.ContainerRuntime)."""

    name: str
    finished: bool  # exited and will not be started again
    last_exit: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """``run``: the index of the init container to supervise now (start it, or keep it
    running); None when none is to run: ``done`` (all succeeded) or ``failed``."""

    run: int | None
    done: bool = False
    failed: bool = False


def succeeded(c: InitState) -> bool:
    return c.finished and c.last_exit == 0


def plan(init: Sequence[InitState]) -> Plan:
    for i, c in enumerate(init):
        if succeeded(c):
            continue
        if c.finished:  # failed under restartPolicy Never: the pod has failed
            return Plan(None, failed=True)
        return Plan(i)
    return Plan(None, done=True)


def restarts_after_exit(exit_code: int, restart_policy: str) -> bool:
    """An init container that exited is started again only after a failure, and never
    under restartPolicy Never (exit 0 is done, whatever the policy)."""
    return exit_code != 0 and restart_policy != "Never"


def incomplete(init: Sequence[InitState]) -> list[str]:
    return [c.name for c in init if not succeeded(c)]


def initialized_condition(init: Sequence[InitState]) -> dict[str, Any]:
    """The kubelet's Initialized condition (status.generate.go)."""
    pending = incomplete(init)
    if not pending:
        return {"type": "Initialized", "status": "True"}
    return {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
            "message": f"containers with incomplete status: [{' '.join(pending)}]"}


def terminated(exit_code: int | None) -> dict[str, Any]:
    return {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
