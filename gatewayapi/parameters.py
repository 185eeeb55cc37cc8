"""``parametersRef`` on GatewayClasses and Gateways (pure).

Gateway API (v1.6.1, ``ParametersReference`` and ``GatewayInfrastructure.parametersRef``):
a referent that cannot be found, is of an unsupported kind or holds malformed data SHOULD
make the GatewayClass, or the Gateway, not Accepted, with reason ``InvalidParameters``.

Tulle defines no parameters: nothing in a GatewayClass or Gateway is configured through a
referenced object (not a ConfigMap, not a kind of its own). So every kind is unsupported
and any ``parametersRef`` is InvalidParameters: the object is refused instead of served with
settings silently ignored. The verdict reads the reference alone (no lookup), so the lab's
status and every node's tables reach it from the same spec.

A Gateway whose GatewayClass has invalid parameters is not served either: the class's
parameters are the defaults the Gateway's merge with (the spec leaves the merge to the
implementation), and defaults that cannot be read leave nothing valid to serve.
"""

from __future__ import annotations

from agent.model.gateway import Gateway, GatewayClass, LocalParametersReference, ParametersReference

REASON = "InvalidParameters"


def _describe(ref: ParametersReference | LocalParametersReference, namespace: str | None) -> str:
    group = ref.group or "core"
    where = f"{namespace}/{ref.name}" if namespace else ref.name
    return f"{ref.kind} {where} (group {group})"


def class_parameters_problem(gateway_class: GatewayClass) -> str | None:
    """Why the class's ``spec.parametersRef`` is invalid, or None when it has none."""
    ref = gateway_class.spec.parameters_ref
    if ref is None:
        return None
    return (
        f"parametersRef {_describe(ref, ref.namespace)} is not supported: Tulle reads no "
        "GatewayClass parameters (no kind is supported); remove parametersRef"
    )


def gateway_parameters_problem(gateway: Gateway, class_problem: str | None = None) -> str | None:
    """Why the Gateway cannot be served for its parameters: its own
    ``spec.infrastructure.parametersRef``, then its class's (``class_problem``), or None."""
    infrastructure = gateway.spec.infrastructure
    ref = infrastructure.parameters_ref if infrastructure is not None else None
    if ref is not None:
        return (
            f"infrastructure.parametersRef {_describe(ref, gateway.metadata.namespace)} is not "
            "supported: Tulle reads no Gateway parameters (no kind is supported); remove "
            "parametersRef"
        )
    if class_problem is not None:
        return f"GatewayClass {gateway.spec.gateway_class_name}: {class_problem}"
    return None
