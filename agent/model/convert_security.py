"""Reader for a container's ``securityContext`` with Kubernetes' validation
(pkg/apis/core/validation ValidateSecurityContext): a user id in int32's non-negative range,
and ``allowPrivilegeEscalation: false`` refused beside ``privileged: true`` or an added
``CAP_SYS_ADMIN``, which would grant what it forbids. Capability names are not checked here,
as the API does not check them: a name the runtime does not know fails the container's start
(lab/capabilities.py)."""

from __future__ import annotations

from agent.model.core_container import Capabilities, SecurityContext
from agent.model.reader import Reader

_MAX_ID = 2**31 - 1


def read_security_context(r: Reader) -> SecurityContext:
    context = SecurityContext(
        capabilities=r.obj("capabilities", _read_capabilities),
        privileged=r.boolean("privileged"),
        allow_privilege_escalation=r.boolean("allowPrivilegeEscalation"),
        read_only_root_filesystem=r.boolean("readOnlyRootFilesystem"),
        run_as_user=r.integer("runAsUser", minimum=0, maximum=_MAX_ID),
        run_as_non_root=r.boolean("runAsNonRoot"),
    )
    if context.allow_privilege_escalation is False:
        if context.privileged:
            r.fail(None, "cannot set `allowPrivilegeEscalation` to false and `privileged` "
                         "to true")
        added = context.capabilities.add if context.capabilities else ()
        if "CAP_SYS_ADMIN" in added:
            r.fail(None, "cannot set `allowPrivilegeEscalation` to false and "
                         "`capabilities.Add` CAP_SYS_ADMIN")
    return context


def _read_capabilities(r: Reader) -> Capabilities:
    return Capabilities(add=r.string_list("add"), drop=r.string_list("drop"))
