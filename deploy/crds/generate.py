"""Writes the CustomResourceDefinitions the lab serves, one file per kind: the Gateway API's
into ``deploy/crds/gateway-api/``, Tulle's own (PeerAuthentication, BackendTrafficPolicy,
AuthorizationPolicy, HTTPLocalRateLimitPolicy, LoadBalancerIPPool) into ``deploy/crds/tulle/``:
``python deploy/crds/generate.py``
(``--check`` compares). The schemas live beside it: ``schema_parts.py`` (shared types),
``gateway_schemas.py`` (GatewayClass, Gateway, ReferenceGrant), ``httproute_schema.py``,
``grpcroute_schema.py``, ``tlsroute_schema.py``, ``l4route_schema.py`` (TCPRoute, UDPRoute),
``backendtls_schema.py`` (BackendTLSPolicy), ``listenerset_schema.py`` (ListenerSet),
``peerauth_schema.py``, ``backendpolicy_schema.py``, ``authz_schema.py``, ``fault_schema.py``,
``ratelimit_schema.py``, ``lbpool_schema.py``.

The schemas cover every field Tulle's model (``agent/model/convert_gateway.py``,
``convert_httproute.py``, ``convert_httpfilter.py``) reads, with upstream's structure, names,
enums, list bounds and lengths; the descriptions are ours. Format rules (hostnames, paths,
names) and upstream's CEL rules are left to the lab's typed admission, which runs after the
schema. Each version shares one schema (``conversion: None``), as upstream's do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the schema modules beside this script, however it is loaded

from authz_schema import ACTION_COLUMN, AUTHORIZATION_POLICY  # noqa: E402
from backendpolicy_schema import ACCEPTED_COLUMN, BACKEND_TRAFFIC_POLICY  # noqa: E402
from backendpolicy_schema import GROUP as POLICY_GROUP  # noqa: E402
from backendtls_schema import BACKEND_TLS_POLICY  # noqa: E402
from fault_schema import HTTP_FAULT  # noqa: E402
from gateway_schemas import GATEWAY, GATEWAY_CLASS, REFERENCE_GRANT  # noqa: E402
from grpcroute_schema import GRPC_ROUTE  # noqa: E402
from httproute_schema import HTTP_ROUTE  # noqa: E402
from l4route_schema import TCP_ROUTE, UDP_ROUTE  # noqa: E402
from lbpool_schema import GROUP as NETWORKING_GROUP  # noqa: E402
from lbpool_schema import LOAD_BALANCER_IP_POOL  # noqa: E402
from listenerset_schema import LISTENER_SET  # noqa: E402
from peerauth_schema import GROUP as SECURITY_GROUP  # noqa: E402
from peerauth_schema import MODE_COLUMN, PEER_AUTHENTICATION  # noqa: E402
from ratelimit_schema import HTTP_LOCAL_RATE_LIMIT_POLICY  # noqa: E402
from schema_parts import GROUP, PRINT_AGE, Schema, condition_column  # noqa: E402
from tlsroute_schema import TLS_ROUTE  # noqa: E402

OUT = HERE / "gateway-api"
TULLE_OUT = HERE / "tulle"

# --- the CRDs ----------------------------------------------------------------------------

TOP = {
    "apiVersion": {"description": "The versioned schema of this object.", "type": "string"},
    "kind": {"description": "The REST resource this object is.", "type": "string"},
    "metadata": {"type": "object"},
}


def crd(
    kind_name: str,
    plural: str,
    schema: Schema,
    *,
    scope: str = "Namespaced",
    short: tuple[str, ...] = (),
    columns: tuple[dict[str, Any], ...] = (),
    wide: tuple[dict[str, Any], ...] = (),
    versions: tuple[str, ...] = ("v1", "v1beta1"),
    storage: str = "v1",
    status: bool = True,
    group: str = GROUP,
    categories: tuple[str, ...] = ("gateway-api",),
) -> dict[str, Any]:
    root = {**schema, "properties": {**TOP, **schema["properties"]}}
    names: dict[str, Any] = {"categories": list(categories), "kind": kind_name}
    names["listKind"] = f"{kind_name}List"
    names["plural"] = plural
    if short:
        names["shortNames"] = list(short)
    names["singular"] = kind_name.lower()
    metadata: dict[str, Any] = {"name": f"{plural}.{group}"}
    if group == GROUP:
        # The Gateway API release these are shaped after, which Tulle checks at start
        # (gatewayapi/crdversion.py INSTALLED_VERSION; tests/unit/gatewayapi/test_crdversion.py).
        metadata["annotations"] = {
            "gateway.networking.k8s.io/bundle-version": "v1.6.0",
            "gateway.networking.k8s.io/channel": "standard",
        }
    metadata["labels"] = {"app.kubernetes.io/part-of": "tulle"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "names": names,
            "scope": scope,
            "conversion": {"strategy": "None"},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == storage,
                    "additionalPrinterColumns": [*columns, PRINT_AGE, *wide],
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}} if status else {},
                }
                for v in versions
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD."""
    return {
        "gatewayclasses.yaml": crd(
            "GatewayClass",
            "gatewayclasses",
            GATEWAY_CLASS,
            scope="Cluster",
            short=("gc",),
            columns=(
                {"jsonPath": ".spec.controllerName", "name": "Controller", "type": "string"},
                condition_column("Accepted"),
            ),
            wide=(
                {
                    "jsonPath": ".spec.description",
                    "name": "Description",
                    "type": "string",
                    "priority": 1,
                },
            ),
        ),
        "gateways.yaml": crd(
            "Gateway",
            "gateways",
            GATEWAY,
            short=("gtw",),
            columns=(
                {"jsonPath": ".spec.gatewayClassName", "name": "Class", "type": "string"},
                {"jsonPath": ".status.addresses[*].value", "name": "Address", "type": "string"},
                condition_column("Programmed"),
            ),
        ),
        "httproutes.yaml": crd(
            "HTTPRoute",
            "httproutes",
            HTTP_ROUTE,
            columns=({"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"},),
        ),
        "grpcroutes.yaml": crd(
            "GRPCRoute",
            "grpcroutes",
            GRPC_ROUTE,
            columns=({"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"},),
            versions=("v1",),
        ),
        "tlsroutes.yaml": crd(
            "TLSRoute",
            "tlsroutes",
            TLS_ROUTE,
            columns=({"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"},),
            versions=("v1",),
        ),
        "tcproutes.yaml": crd("TCPRoute", "tcproutes", TCP_ROUTE, versions=("v1", "v1alpha2")),
        "udproutes.yaml": crd("UDPRoute", "udproutes", UDP_ROUTE, versions=("v1", "v1alpha2")),
        "listenersets.yaml": crd(
            "ListenerSet",
            "listenersets",
            LISTENER_SET,
            short=("lset",),
            columns=(condition_column("Accepted"), condition_column("Programmed")),
            versions=("v1",),
        ),
        "referencegrants.yaml": crd(
            "ReferenceGrant",
            "referencegrants",
            REFERENCE_GRANT,
            short=("refgrant",),
            storage="v1beta1",
            status=False,
        ),
        "backendtlspolicies.yaml": crd(
            "BackendTLSPolicy",
            "backendtlspolicies",
            BACKEND_TLS_POLICY,
            short=("btlspolicy",),
            columns=(condition_column("Accepted"),),
            versions=("v1",),
        ),
    }


def tulle_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for Tulle's own kinds."""
    return {
        "peerauthentications.yaml": crd(
            "PeerAuthentication",
            "peerauthentications",
            PEER_AUTHENTICATION,
            short=("pa",),
            columns=(MODE_COLUMN,),
            versions=("v1",),
            status=False,
            group=SECURITY_GROUP,
            categories=("tulle",),
        ),
        "backendtrafficpolicies.yaml": crd(
            "BackendTrafficPolicy",
            "backendtrafficpolicies",
            BACKEND_TRAFFIC_POLICY,
            short=("btp",),
            columns=(ACCEPTED_COLUMN,),
            versions=("v1alpha1",),
            storage="v1alpha1",
            group=POLICY_GROUP,
            categories=("tulle",),
        ),
        "authorizationpolicies.yaml": crd(
            "AuthorizationPolicy",
            "authorizationpolicies",
            AUTHORIZATION_POLICY,
            short=("ap",),
            columns=(ACTION_COLUMN, condition_column("Accepted")),
            versions=("v1",),
            group=SECURITY_GROUP,
            categories=("tulle",),
        ),
        "httpfaults.yaml": crd(
            "HTTPFault",
            "httpfaults",
            HTTP_FAULT,
            columns=(
                {"jsonPath": ".spec.delay.fixedDelay", "name": "Delay", "type": "string"},
                {"jsonPath": ".spec.abort.httpStatus", "name": "Abort", "type": "integer"},
            ),
            versions=("v1alpha1",),
            storage="v1alpha1",
            status=False,
            group=POLICY_GROUP,
            categories=("tulle",),
        ),
        "httplocalratelimitpolicies.yaml": crd(
            "HTTPLocalRateLimitPolicy",
            "httplocalratelimitpolicies",
            HTTP_LOCAL_RATE_LIMIT_POLICY,
            short=("rlp",),
            columns=(ACCEPTED_COLUMN,),
            versions=("v1alpha1",),
            storage="v1alpha1",
            group=POLICY_GROUP,
            categories=("tulle",),
        ),
        "loadbalancerippools.yaml": crd(
            "LoadBalancerIPPool",
            "loadbalancerippools",
            LOAD_BALANCER_IP_POOL,
            scope="Cluster",
            short=("lbippool",),
            columns=(
                {"jsonPath": ".spec.disabled", "name": "Disabled", "type": "boolean"},
            ),
            versions=("v1alpha1",),
            storage="v1alpha1",
            status=False,
            group=NETWORKING_GROUP,
            categories=("tulle",),
        ),
    }


def outputs() -> dict[Path, dict[str, dict[str, Any]]]:
    """Directory -> (file name -> CRD)."""
    return {OUT: crds(), TULLE_OUT: tulle_crds()}


HEADER_TEXT = "# Generated by deploy/crds/generate.py; edit that, then run it.\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared sub-schemas written out in full
        return True


def render(doc: dict[str, Any]) -> str:
    return HEADER_TEXT + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    stale = []
    for directory, docs in outputs().items():
        for file, doc in docs.items():
            path, text = directory / file, render(doc)
            if "--check" in argv:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
                continue
            directory.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale (run python deploy/crds/generate.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
