"""The CustomResourceDefinitions a lab serves, written by ``deploy/crds/generate.py``: the
Gateway API's (``deploy/crds/gateway-api``) and Tulle's own (``deploy/crds/tulle``:
PeerAuthentication, BackendTrafficPolicy, AuthorizationPolicy, HTTPFault,
HTTPLocalRateLimitPolicy, LoadBalancerIPPool). Loaded here for `tulle lab up`, which installs
them through the API before anything uses the kinds, and for tests that hold a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD_DIR = REPO / "deploy" / "crds" / "gateway-api"
TULLE_CRD_DIR = REPO / "deploy" / "crds" / "tulle"
KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "BackendTLSPolicy")
TULLE_KINDS = (
    "PeerAuthentication",
    "BackendTrafficPolicy",
    "AuthorizationPolicy",
    "HTTPFault",
    "HTTPLocalRateLimitPolicy",
    "LoadBalancerIPPool",
)
_EXPECTED = {CRD_DIR: KINDS, TULLE_CRD_DIR: TULLE_KINDS}


def manifests(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every CRD in ``directory`` (by default, every directory a lab installs), in file-name
    order; a clear error if one of the lab's kinds is missing."""
    directories = [directory] if directory is not None else list(_EXPECTED)
    found = []
    for where in directories:
        for path in sorted(where.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    found.append(doc)
    kinds = {doc["spec"]["names"]["kind"] for doc in found}
    wanted = [k for d in directories for k in _EXPECTED.get(d, KINDS)]
    missing = [k for k in wanted if k not in kinds]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(str(d) for d in directories)}: no CustomResourceDefinition for "
            f"{', '.join(missing)} (run python deploy/crds/generate.py)"
        )
    return found
