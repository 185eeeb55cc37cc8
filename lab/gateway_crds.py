"""The Gateway API CustomResourceDefinitions a lab serves (``deploy/crds/gateway-api``,
written by ``deploy/crds/generate.py``): loaded here for `tulle lab up`, which installs them
through the API before anything uses the kinds, and for tests that hold a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD_DIR = REPO / "deploy" / "crds" / "gateway-api"
KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")


def manifests(directory: Path = CRD_DIR) -> list[dict[str, Any]]:
    """Every CRD in ``directory``, in file-name order; a clear error if one is missing."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append(doc)
    kinds = {doc["spec"]["names"]["kind"] for doc in found}
    missing = [k for k in KINDS if k not in kinds]
    if missing:
        raise FileNotFoundError(
            f"{directory}: no CustomResourceDefinition for {', '.join(missing)} "
            "(run python deploy/crds/generate.py)"
        )
    return found
