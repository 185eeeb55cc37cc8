"""The issuer's decisions without gRPC: its order, its bundle, and arbitrary input under
Hypothesis (a refusal or an SVID, never another exception)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.auth import NODE_NAME_EXTRA, Caller, TokenReviewAuthenticator
from controlplane.issuer import AGENT_ACCOUNT, Issuer, Refusal, requested_identity
from identity.authz import PodRecord
from identity.bundle import TrustBundle
from identity.ca import CertificateAuthority
from identity.csr import CsrError
from identity.system import agent_account
from tests.unit.identity.helpers import NOW, TD, WEB, csr_pem, root

AGENT = Caller("n1", AGENT_ACCOUNT)
PODS = [PodRecord("shop", "web-1", "n1", "web")]
CA = CertificateAuthority.generate_root("issuer test root", NOW - timedelta(days=1))
VALID = csr_pem().decode()


def issuer(**kw: object) -> Issuer:
    return Issuer(CA, TD, lambda node: PODS, **kw)  # type: ignore[arg-type]


def test_a_non_agent_is_refused_before_its_csr_or_the_pods_are_looked_at() -> None:
    def no_lookup(node: str) -> list[PodRecord]:
        raise AssertionError("pods looked up for a non-agent")

    with pytest.raises(Refusal) as info:
        Issuer(CA, TD, no_lookup).issue(Caller("n1", "shop/web"), "garbage", 0, NOW)
    assert (info.value.status, info.value.reason) == ("permission-denied", "not-an-agent")


def test_the_agent_accounts_are_configurable() -> None:
    mine = Caller("n1", "tulle-system/agent")
    assert issuer(agent_accounts=frozenset({mine.service_account})).issue(mine, VALID, 0, NOW)
    with pytest.raises(Refusal, match="not-an-agent"):
        issuer(agent_accounts=frozenset({mine.service_account})).issue(AGENT, VALID, 0, NOW)


def test_a_shorter_maximum_clamps_and_a_longer_minimum_refuses() -> None:
    issued = issuer(max_validity=timedelta(hours=1)).issue(AGENT, VALID, 86400, NOW)
    assert issued.chain[0].not_valid_after.replace(tzinfo=NOW.tzinfo) == NOW + timedelta(hours=1)
    with pytest.raises(Refusal, match="under the minimum 600 s"):
        issuer(min_validity=timedelta(minutes=10)).issue(AGENT, VALID, 300, NOW)


def test_during_a_root_rotation_both_roots_are_handed_out() -> None:
    new_root = root("next root")[0]
    both = TrustBundle(TD, (CA.root, new_root))
    issued = issuer(trust_bundle=lambda: both).issue(AGENT, VALID, 0, NOW)
    assert issued.bundle.roots == (CA.root, new_root)
    assert issued.spiffe_id == WEB and "web-1" in issued.because


def test_an_expired_ca_is_unavailable_not_a_crash() -> None:
    with pytest.raises(Refusal) as info:
        issuer().issue(AGENT, VALID, 0, NOW + timedelta(days=3651))
    assert (info.value.status, info.value.reason) == ("unavailable", "ca-unavailable")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096) | st.builds(lambda cut, junk: VALID.encode()[:cut] + junk,
                                             st.integers(0, len(VALID)), st.binary(max_size=64)))
def test_any_bytes_give_an_identity_or_a_csr_error(data: bytes) -> None:
    try:
        requested_identity(data)
    except CsrError:
        pass


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2048), st.integers(-(2**63), 2**63 - 1))
def test_any_request_is_issued_or_refused(csr: str, seconds: int) -> None:
    try:
        issued = issuer().issue(AGENT, csr, seconds, NOW)
    except Refusal as r:
        assert r.status in ("invalid-argument", "permission-denied")
    else:  # only a real CSR for a pod on n1 gets here
        assert isinstance(issued.chain[0], x509.Certificate)


@pytest.mark.parametrize(
    "username",
    [
        "system:serviceaccount:kube-system:tulle-agent",  # Kubernetes' namespace, not Tulle's
        "system:serviceaccount:shop:tulle-agent",  # a tenant who named an account alike
        "system:serviceaccount:tulle-systemx:tulle-agent",
        "system:serviceaccount:tulle-system:tulle-agent-x",
        "system:serviceaccount:tulle-system:tulle-waypoint",  # Tulle's, but not the agent
    ],
)
def test_an_account_named_like_the_agent_elsewhere_is_not_the_agent(username: str) -> None:
    """The attacker's test: a token for the same ServiceAccount name in another namespace,
    bound to the node, authenticates (TokenReview says who it is) and is refused."""
    review = {"authenticated": True, "user": {"username": username,
                                               "extra": {NODE_NAME_EXTRA: ["n1"]}}}
    caller = TokenReviewAuthenticator(lambda token: review)([("authorization", "Bearer t")])
    with pytest.raises(Refusal) as info:
        issuer().issue(caller, VALID, 0, NOW)
    assert (info.value.status, info.value.reason) == ("permission-denied", "not-an-agent")


def test_another_system_namespace_moves_the_agent_with_it() -> None:
    """With --system-namespace mesh the CA signs for mesh/tulle-agent only."""
    accounts = frozenset({agent_account("mesh")})
    assert issuer(agent_accounts=accounts).issue(Caller("n1", "mesh/tulle-agent"), VALID, 0, NOW)
    with pytest.raises(Refusal, match="not-an-agent"):
        issuer(agent_accounts=accounts).issue(Caller("n1", agent_account()), VALID, 0, NOW)
