"""``python -m l7proxy --config FILE`` enforces the file's AuthorizationPolicies and
HTTPLocalRateLimitPolicies as the node waypoint enforces the cluster's (the caller's identity
is the Pod in the file at its address), and refuses any document kind it does not read:
an ignored policy would be a policy silently not enforced (issue 14's fail-open)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gatewayapi import BackendTarget, GatewayParent
from l7proxy.__main__ import main
from l7proxy.authz import Call
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.ratelimit import RateLimitGate
from l7proxy.testing import GATEWAY_PREAMBLE, service

ROUTE = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
"""
POD = """\
---
apiVersion: v1
kind: Pod
metadata: {name: web-client, namespace: front}
spec: {serviceAccountName: web, containers: [{name: c, image: c}]}
status: {phase: Running, podIP: 127.0.0.2}
"""
POLICIES = """\
---
apiVersion: security.tulle.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
---
apiVersion: security.tulle.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: infra}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  rules: [{from: [{source: {principals: [cluster.local/ns/front/sa/web]}}]}]
"""
LIMIT = """\
---
apiVersion: policy.tulle.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-limit, namespace: default}
spec:
  targetRefs: [{kind: Service, name: web}]
  identity: {requestsPerSecond: 1}
"""
PARENT = GatewayParent("infra", "gw", 80)
CLIENT, STRANGER = ("127.0.0.2", 40000), ("127.0.0.3", 40000)
WEB = BackendTarget("default", "web", 8080)


def _file(*parts: str, extra: str = "") -> str:
    return (GATEWAY_PREAMBLE + service("web") + ROUTE + "".join(parts)
            + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
            "listeners: [{address: '127.0.0.1:0', parent: "
            "{kind: Gateway, namespace: infra, name: gw, port: 80}}]\n"
            "endpoints: {default/web:8080: ['127.0.0.1:9']}\n" + extra)


def _call(client: tuple[str, int], path: str) -> Call:
    return Call(client, PARENT, [("127.0.0.1", 9)], "GET", "gw.example", path, [])


def test_the_files_authorization_policies_are_enforced() -> None:
    config = waypoint_config(load_config_text(_file(POD, POLICIES)))
    assert config.authorize is not None
    assert config.authorize(_call(CLIENT, "/web")) is None
    denied = config.authorize(_call(CLIENT, "/admin/users"))
    assert denied is not None and denied.policies == ("infra/deny-admin",)
    stranger = config.authorize(_call(STRANGER, "/web"))  # no pod there: no identity
    assert stranger is not None and stranger.by_allow
    assert stranger.policies == ("infra/allow-web",)


def test_the_files_trust_domain_names_the_callers() -> None:
    config = waypoint_config(load_config_text(_file(POD, POLICIES,
                                                    extra="trustDomain: example.org\n")))
    assert config.authorize is not None
    verdict = config.authorize(_call(CLIENT, "/web"))  # example.org/ns/front/sa/web now
    assert verdict is not None and verdict.by_allow


@pytest.mark.parametrize("bad", ["''", "[a]", "a/b"])
def test_a_bad_trust_domain_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="trustDomain"):
        load_config_text(_file(POD, POLICIES, extra=f"trustDomain: {bad}\n"))


def test_the_files_rate_limit_is_charged_per_caller_identity() -> None:
    config = waypoint_config(load_config_text(_file(POD, LIMIT)))
    assert config.authorize is None  # no AuthorizationPolicy in the file: no gate
    assert config.rate_limit is not None
    gate = getattr(config.rate_limit, "__self__", None)
    assert isinstance(gate, RateLimitGate)
    gate.clock = lambda: 50.0  # held still: no refill between the calls
    assert config.rate_limit(CLIENT, WEB) is None
    limited = config.rate_limit((CLIENT[0], 40001), WEB)  # same pod, another port
    assert limited is not None and limited.policy == "default/web-limit"
    assert config.rate_limit(STRANGER, WEB) is None  # another identity, its own bucket


def test_a_file_without_policies_has_no_gates() -> None:
    config = waypoint_config(load_config_text(_file(POD)))
    assert config.authorize is None and config.rate_limit is None


NETWORK_POLICY = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lock, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""
PEER_AUTH = """\
---
apiVersion: security.tulle.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec: {mtls: {mode: STRICT}}
"""


@pytest.mark.parametrize(("doc", "named"), [
    (NETWORK_POLICY, "NetworkPolicy default/lock"),
    (PEER_AUTH, "PeerAuthentication default/strict"),
], ids=["NetworkPolicy", "PeerAuthentication"])
def test_a_kind_the_file_does_not_read_is_refused_naming_the_document(
        doc: str, named: str) -> None:
    text = _file(POD, doc)
    index = [d.get("kind") for d in yaml.safe_load_all(text)].index(named.split()[0]) + 1
    with pytest.raises(ValueError, match=f"document {index} \\({named}\\)"):
        load_config_text(text, "f.yaml")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind \"Frobnicator\""):
        load_config_text(_file("---\napiVersion: x/v1\nkind: Frobnicator\nmetadata: {name: f}\n"))


def test_the_command_refuses_the_file_with_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "waypoint.yaml"
    path.write_text(_file(POD, NETWORK_POLICY))
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "NetworkPolicy default/lock" in err and "does not read NetworkPolicy" in err
    path.write_text(_file(POD, POLICIES.replace("action: DENY", "action: CUSTOM")))
    assert main(["--config", str(path)]) == 2
    assert "CUSTOM" in capsys.readouterr().err
