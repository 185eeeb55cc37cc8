"""The identity service's decisions, without gRPC: may this caller have an SVID for the
identity its CSR asks for, and for how long.

`Issuer.issue(caller, csr, validity_seconds, now)`, in this order:
1. the caller's ServiceAccount is an agent's (`agent_accounts`: `<system namespace>/tulle-agent`,
   the DaemonSet's; default `tulle-system/tulle-agent`): nobody else asks for workload identities;
2. the requested lifetime: 0 means the maximum (default 24 h); longer is shortened to the
   maximum; shorter than the minimum (default the CA's, 1 minute) or negative is refused,
   not raised: an agent that asks for 10 s would renew every 5 s and must hear about it;
3. the SPIFFE ID asked for, read from the CSR's one URI SAN (parsed only after 1., so a
   non-agent's bytes never reach the parser, and at most 16 KiB of it);
4. node authorization (`identity.authz.may_issue`) for the caller's node, against the pods
   `pods_on_node(node)` returns;
5. `ca.issue`, which runs `identity.csr.validate_csr` (key, signature, exactly one SAN, no
   CA:true) and signs.
A refusal is a `Refusal` with a `status` (how the transport reports it), a stable `reason`
(for metrics) and a message that says what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509

from controlplane.auth import Caller
from identity.authz import PodRecord, may_issue
from identity.bundle import TrustBundle
from identity.ca import DEFAULT_LIFETIME, CaError, CertificateAuthority
from identity.certs import PARSE_ERRORS
from identity.csr import MAX_CSR_BYTES, CsrError
from identity.spiffe import SpiffeId, SpiffeIdError
from identity.system import agent_account

Status = Literal["unauthenticated", "permission-denied", "invalid-argument", "unavailable"]
AGENT_ACCOUNT = agent_account()  # tulle-system/tulle-agent: deploy/daemonset/rbac.yaml
# Beyond the CSR's reasons (identity.csr.REASONS):
NOT_AN_AGENT = "not-an-agent"
NOT_AUTHORIZED = "node-not-authorized"
BAD_VALIDITY = "bad-validity"
CA_UNAVAILABLE = "ca-unavailable"


class Refusal(Exception):
    def __init__(self, status: Status, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Issued:
    spiffe_id: SpiffeId
    chain: list[x509.Certificate]  # leaf first, without the root
    bundle: TrustBundle
    because: str  # the pod that allowed it


def lifetime_for(seconds: int, minimum: timedelta, maximum: timedelta) -> timedelta:
    """The lifetime to issue for a request of `seconds` (0: the maximum); Refusal if too short."""
    if seconds == 0 or seconds >= maximum.total_seconds():
        return maximum  # compared as numbers first: timedelta overflows past ~2**46 s
    asked = timedelta(seconds=seconds) if seconds > 0 else None
    if asked is None or asked < minimum:
        raise Refusal(
            "invalid-argument", BAD_VALIDITY,
            f"validity_duration {seconds} s is under the minimum {int(minimum.total_seconds())} s",
        )
    return min(asked, maximum)


def requested_identity(csr: bytes) -> SpiffeId:
    """The SPIFFE ID in the PEM request's one URI SAN; CsrError if there is not exactly one."""
    if len(csr) > MAX_CSR_BYTES:
        raise CsrError("too-large", f"the request is {len(csr)} bytes, over {MAX_CSR_BYTES}")
    try:
        request = x509.load_pem_x509_csr(csr)
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        raise CsrError("wrong-identity", "no subjectAltName: want one SPIFFE ID URI") from None
    except PARSE_ERRORS as e:
        raise CsrError("malformed", f"not a PEM certificate signing request ({e})") from None
    if len(uris) != 1:
        raise CsrError("wrong-identity", f"{len(uris)} URI SANs; want exactly one SPIFFE ID")
    try:
        return SpiffeId.parse(uris[0])
    except SpiffeIdError as e:
        raise CsrError("wrong-identity", f"the URI SAN {uris[0]!r}: {e}") from None


@dataclass
class Issuer:
    ca: CertificateAuthority
    trust_domain: str
    pods_on_node: Callable[[str], Iterable[PodRecord]]
    agent_accounts: frozenset[str] = frozenset({AGENT_ACCOUNT})
    max_validity: timedelta = DEFAULT_LIFETIME
    min_validity: timedelta | None = None  # None: the CA's minimum
    # The roots to hand out; default the CA's own (a rotation passes both).
    trust_bundle: Callable[[], TrustBundle] | None = field(default=None)

    def bundle(self) -> TrustBundle:
        if self.trust_bundle is not None:
            return self.trust_bundle()
        return TrustBundle(self.trust_domain, (self.ca.root,))

    def issue(self, caller: Caller, csr: str, validity_seconds: int, now: datetime) -> Issued:
        """The SVID chain for the identity `csr` asks for; Refusal saying why not."""
        if caller.service_account not in self.agent_accounts:
            raise Refusal(
                "permission-denied", NOT_AN_AGENT,
                f"ServiceAccount {caller.service_account} is not a node agent's",
            )
        minimum = self.min_validity or self.ca.min_lifetime
        lifetime = lifetime_for(validity_seconds, minimum, self.max_validity)
        data = csr.encode()
        try:
            spiffe_id = requested_identity(data)
        except CsrError as e:
            raise Refusal("invalid-argument", e.reason, e.message) from None
        decision = may_issue(caller.node, spiffe_id, self.trust_domain,
                             self.pods_on_node(caller.node))
        if not decision:
            raise Refusal("permission-denied", NOT_AUTHORIZED, decision.reason)
        try:
            chain = self.ca.issue(data, spiffe_id, now, lifetime)
        except CsrError as e:
            raise Refusal("invalid-argument", e.reason, e.message) from None
        except CaError as e:  # the CA itself cannot sign now (expired, not yet valid)
            raise Refusal("unavailable", CA_UNAVAILABLE, str(e)) from None
        return Issued(spiffe_id, chain, self.bundle(), decision.reason)
