"""A container's securityContext: read as the API writes it, refused where the API server
refuses it (pkg/apis/core/validation ValidateSecurityContext)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.core import Pod
from agent.model.core_container import Capabilities, SecurityContext
from tests.unit.model.helpers import edit, error_of, round_trip

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "agent-x", "namespace": "sys"},
    "spec": {"containers": [{"name": "agent", "command": ["agent"]}]},
}
AT = "spec.containers[0].securityContext"


def test_reads_the_fields_a_runtime_acts_on_and_writes_them_back() -> None:
    context = {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "BPF"]},
               "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
               "runAsUser": 0, "runAsNonRoot": False, "privileged": False}
    pod = round_trip(edit(POD, AT, context))
    assert isinstance(pod, Pod)
    assert pod.spec.containers[0].security_context == SecurityContext(
        capabilities=Capabilities(add=("NET_ADMIN", "BPF"), drop=("ALL",)),
        privileged=False, allow_privilege_escalation=False, read_only_root_filesystem=True,
        run_as_user=0, run_as_non_root=False)


def test_unset_is_none() -> None:
    pod = round_trip(POD)
    assert isinstance(pod, Pod)
    assert pod.spec.containers[0].security_context is None


def test_capability_names_are_not_checked_by_the_api() -> None:
    pod = round_trip(edit(POD, AT, {"capabilities": {"add": ["NOT_A_CAP"]}}))
    assert isinstance(pod, Pod)
    context = pod.spec.containers[0].security_context
    assert context is not None and context.capabilities == Capabilities(add=("NOT_A_CAP",))


@pytest.mark.parametrize(("context", "message"), [
    ({"allowPrivilegeEscalation": False, "privileged": True},
     "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
    ({"allowPrivilegeEscalation": False, "capabilities": {"add": ["CAP_SYS_ADMIN"]}},
     "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"),
    ({"runAsUser": -1}, "runAsUser"),
    ({"capabilities": {"add": "NET_ADMIN"}}, "capabilities.add"),
    ({"privileged": "yes"}, "expected boolean"),
])
def test_refuses_what_the_api_server_refuses(context: dict[str, Any], message: str) -> None:
    assert message in error_of(edit(POD, AT, context))
