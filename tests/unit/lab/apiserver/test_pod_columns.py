"""``kubectl get pods`` STATUS and RESTARTS as the server's printer computes them from a
Pod's status (printers.go printPod), including what the lab kubelet writes for init
containers (lab/podruntime.py)."""

from __future__ import annotations

from typing import Any

import pytest

from lab.apiserver.pod_columns import pod_restarts, pod_status_reason

RUNNING = {"running": {"startedAt": "2026-12-06T00:00:00Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}
INIT_WAIT = {"waiting": {"reason": "PodInitializing"}}


def _pod(phase: str, init: list[dict[str, Any]] | None = None,
         app: list[dict[str, Any]] | None = None, initialized: bool = True,
         **extra: Any) -> dict[str, Any]:
    init = init or []
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Initialized", "status": "True" if initialized else "False"}],
        "containerStatuses": [{"name": f"c{i}", "ready": False, "restartCount": 0, **s}
                              for i, s in enumerate(app or [])],
        **extra,
    }
    if init:
        status["initContainerStatuses"] = [
            {"name": f"i{i}", "ready": False, "restartCount": 0, **s} for i, s in enumerate(init)]
    return {"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": f"i{i}"} for i in range(len(init))],
                     "containers": [{"name": "c0"}]},
            "status": status}


@pytest.mark.parametrize(("pod", "shown"), [
    (_pod("Pending", [{"state": RUNNING}, {"state": INIT_WAIT}, {"state": INIT_WAIT}],
          [{"state": INIT_WAIT}], initialized=False), "Init:0/3"),
    (_pod("Pending", [{"state": DONE}, {"state": RUNNING}, {"state": INIT_WAIT}],
          [{"state": INIT_WAIT}], initialized=False), "Init:1/3"),
    (_pod("Pending", [{"state": DONE}, {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                        "restartCount": 4}],
          [{"state": INIT_WAIT}], initialized=False), "Init:CrashLoopBackOff"),
    (_pod("Failed", [{"state": {"terminated": {"exitCode": 2, "reason": "Error"}}}],
          [{"state": INIT_WAIT}], initialized=False), "Init:Error"),
    (_pod("Pending", [{"state": {"terminated": {"exitCode": 7}}}], [{"state": INIT_WAIT}],
          initialized=False), "Init:ExitCode:7"),
    (_pod("Pending", [{"state": {"waiting": {"reason": "CreateContainerConfigError"}}}],
          [{"state": INIT_WAIT}], initialized=False), "Init:CreateContainerConfigError"),
    (_pod("Running", [{"state": DONE}], [{"state": RUNNING, "ready": True}]), "Running"),
    (_pod("Running", [], [{"state": RUNNING, "ready": False}]), "Running"),
    (_pod("Pending", [], [{"state": {"waiting": {"reason": "CreateContainerConfigError"}}}]),
     "CreateContainerConfigError"),
    (_pod("Running", [], [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
     "CrashLoopBackOff"),
    (_pod("Succeeded", [], [{"state": DONE}]), "Completed"),
    (_pod("Failed", [], [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
     "Error"),
    (_pod("Failed", [], [], reason="Evicted"), "Evicted"),
    ({"metadata": {"name": "p"}, "spec": {}}, "Pending"),
])
def test_status_column_is_the_printers(pod: dict[str, Any], shown: str) -> None:
    assert pod_status_reason(pod) == shown


def test_a_deleted_pod_is_terminating_until_it_has_ended() -> None:
    pod = _pod("Running", [], [{"state": RUNNING, "ready": True}])
    pod["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    assert pod_status_reason(pod) == "Terminating"
    ended = _pod("Succeeded", [], [{"state": DONE}])
    ended["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    assert pod_status_reason(ended) == "Completed"  # ended: what the containers say


def test_restarts_count_init_containers_while_initializing() -> None:
    pod = _pod("Pending", [{"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "restartCount": 4}],
               [{"state": INIT_WAIT, "restartCount": 0}], initialized=False)
    assert pod_restarts(pod) == 4
    pod = _pod("Running", [{"state": DONE, "restartCount": 4}],
               [{"state": RUNNING, "restartCount": 2}])
    assert pod_restarts(pod) == 2
