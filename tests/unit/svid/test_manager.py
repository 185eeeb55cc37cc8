"""The SVID manager against the real certificate service (controlplane.certificates, in this
process, on a unix socket), with a fake clock: keys stay on the node, chains are verified
before they are written, renewal at half-life, refusals counted and backed off, drops after
the grace, bundle handling."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from agent.svid import store
from agent.svid.client import CertificateClient
from agent.svid.manager import SvidConfig, SvidManager, fingerprint
from agent.svid.schedule import Workload
from controlplane.auth import Caller, StaticTokens
from controlplane.certificates import CertificateServicer, handler, serve
from controlplane.issuer import AGENT_ACCOUNT
from identity.authz import PodRecord
from identity.bundle import TrustBundle, verify_svid
from identity.ca import CertificateAuthority
from identity.certs import load_pem_chain, public_bytes

TD = "cluster.local"
START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()
TOKEN = "token-agent-n1"
WEB: Workload = ("shop", "web")
DB: Workload = ("shop", "db")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@dataclass
class Setup:
    ca: CertificateAuthority
    manager: SvidManager
    clock: Clock
    directory: Path
    pods: list[PodRecord]
    need: set[Workload]
    registry: CollectorRegistry
    requests: list[bytes] = field(default_factory=list)

    def count(self, result: str) -> float:
        value = self.registry.get_sample_value("tulle_svid_requests_total", {"result": result})
        return value or 0.0

    def expiry(self, spiffe_id: str) -> float | None:
        return self.registry.get_sample_value("tulle_svid_expiry_seconds", {"spiffe_id": spiffe_id})


def _recording(servicer: CertificateServicer, seen: list[bytes]) -> grpc.GenericRpcHandler:
    """The service's own handler, keeping every request's bytes as they came in."""
    inner = handler(servicer)

    class Recording(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            found = inner.service(details)
            if found is None:
                return None
            decode = found.request_deserializer

            def keep(data: bytes) -> object:
                seen.append(data)
                return decode(data)  # type: ignore[misc]

            return grpc.unary_unary_rpc_method_handler(
                found.unary_unary,
                request_deserializer=keep,
                response_serializer=found.response_serializer,
            )

    return Recording()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate_root(
        "tulle test root", datetime.fromtimestamp(START, UTC) - timedelta(days=1)
    )


@pytest.fixture
def setup(ca: CertificateAuthority, tmp_path: Path) -> Iterator[Setup]:
    from concurrent import futures

    clock = Clock()
    pods = [PodRecord("shop", "web-1", "n1", "web")]
    seen: list[bytes] = []
    servicer = CertificateServicer(
        ca,
        TD,
        StaticTokens({TOKEN: Caller("n1", AGENT_ACCOUNT)}),
        lambda node: [p for p in pods if p.node_name == node],
        registry=CollectorRegistry(),
        clock=clock.at,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), handlers=[_recording(servicer, seen)]
    )
    socket = tmp_path / "ca.sock"
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    need: set[Workload] = {WEB}
    registry = CollectorRegistry()
    client = CertificateClient(f"unix:{socket}", lambda: TOKEN)
    directory = tmp_path / "svid"
    manager = SvidManager(
        SvidConfig(directory, TD, lifetime=60),
        client,
        lambda: frozenset(need),
        registry=registry,
        clock=clock,
        rand=lambda: 1.0,
    )
    try:
        yield Setup(ca, manager, clock, directory, pods, need, registry, seen)
    finally:
        client.close()
        server.stop(None).wait()


def root_pem(ca: CertificateAuthority) -> bytes:
    return ca.root.public_bytes(Encoding.PEM)


def test_no_bundle_no_request(setup: Setup) -> None:
    assert setup.manager.step() is None
    assert setup.requests == [] and store.read_svids(setup.directory) == {}


def test_an_svid_is_fetched_verified_and_written_owner_only_with_a_key_never_sent(
    setup: Setup,
) -> None:
    assert setup.manager.set_bundle(TD, root_pem(setup.ca))
    assert store.read_bundle(setup.directory) == root_pem(setup.ca)  # the bundle first
    setup.manager.step()
    files = store.read_svids(setup.directory)
    assert list(files) == [WEB]
    path = store.svid_path(setup.directory, *WEB)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    chain = load_pem_chain(files[WEB].chain_pem)
    bundle = TrustBundle(TD, (setup.ca.root,))
    assert str(verify_svid(chain, bundle, setup.clock.at())) == (
        "spiffe://cluster.local/ns/shop/sa/web"
    )
    key = serialization.load_pem_private_key(files[WEB].key_pem, None)
    assert public_bytes(key.public_key()) == public_bytes(chain[0].public_key())
    # What crossed the wire: one CSR for that key, and no private key material.
    [request] = setup.requests
    private = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    assert private not in request and b"PRIVATE KEY" not in request
    assert b"CERTIFICATE REQUEST" in request
    csr_start = request.index(b"-----BEGIN CERTIFICATE REQUEST-----")
    csr = x509.load_pem_x509_csr(request[csr_start : request.index(b"-----END", csr_start) + 37])
    assert public_bytes(csr.public_key()) == public_bytes(key.public_key())
    assert setup.count("issued") == 1
    expiry = setup.expiry("spiffe://cluster.local/ns/shop/sa/web")
    assert expiry == pytest.approx(60.0)
    report = setup.manager.report()
    [held] = report["svids"]
    assert held["serial"] == f"{chain[0].serial_number:x}"
    assert held["root"] == fingerprint(setup.ca.root)
    assert report["trust_bundle"]["roots"][0]["fingerprint"] == fingerprint(setup.ca.root)


def test_renewal_happens_at_half_life_with_a_60_second_lifetime(setup: Setup) -> None:
    setup.manager.set_bundle(TD, root_pem(setup.ca))
    wake = setup.manager.step()
    first = setup.manager.held[WEB]
    assert first.not_after - START == 60.0
    assert setup.manager.step() == START + 30.0  # nothing to do until half-life
    assert setup.count("issued") == 1
    setup.clock.now = START + 29.0
    setup.manager.step()
    assert setup.count("issued") == 1 and setup.manager.held[WEB].serial == first.serial
    setup.clock.now = START + 30.0
    setup.manager.step()
    assert setup.count("issued") == 2
    renewed = setup.manager.held[WEB]
    assert renewed.serial != first.serial and renewed.not_after == START + 90.0
    assert wake is not None
    assert store.read_svids(setup.directory)[WEB].chain_pem != b""


def test_a_refused_request_is_counted_and_retried_with_back_off(setup: Setup) -> None:
    setup.manager.set_bundle(TD, root_pem(setup.ca))
    setup.need.add(DB)  # no pod of shop/db on n1: the CA refuses
    setup.manager.step()
    assert setup.count("node-not-authorized") == 1
    assert list(store.read_svids(setup.directory)) == [WEB]  # the other one is not held up
    [failing] = setup.manager.report()["svid_failures"]
    assert failing["reason"] == "node-not-authorized" and failing["failures"] == 1
    # Back-off: 1 s at the first failure (rand 1.0: the top of the jitter), then 2 s.
    assert setup.manager.step() == START + 1.0
    setup.clock.now = START + 0.5
    setup.manager.step()
    assert setup.count("node-not-authorized") == 1
    setup.clock.now = START + 1.0
    setup.manager.step()
    assert setup.count("node-not-authorized") == 2
    assert setup.manager.retries[DB].at == START + 3.0
    # The pod arrives on the node: the next try succeeds and the back-off is forgotten.
    setup.pods.append(PodRecord("shop", "db-1", "n1", "db"))
    setup.clock.now = START + 3.0
    setup.manager.step()
    assert setup.count("issued") == 2 and DB not in setup.manager.retries
    assert sorted(store.read_svids(setup.directory)) == [DB, WEB]


def test_an_identity_without_pods_is_dropped_after_the_grace(setup: Setup) -> None:
    setup.manager.set_bundle(TD, root_pem(setup.ca))
    setup.manager.step()
    setup.need.clear()
    setup.clock.now = START + 1.0
    setup.manager.step()
    assert list(store.read_svids(setup.directory)) == [WEB]
    setup.clock.now = START + 61.0
    setup.manager.step()
    assert store.read_svids(setup.directory) == {}
    assert setup.expiry("spiffe://cluster.local/ns/shop/sa/web") is None
    assert setup.manager.report()["svids"] == []


def test_a_chain_under_a_root_the_node_does_not_trust_is_not_written(
    setup: Setup,
) -> None:
    stranger = CertificateAuthority.generate_root(
        "another root", setup.clock.at() - timedelta(days=1)
    )
    setup.manager.set_bundle(TD, root_pem(stranger))
    setup.manager.step()
    assert setup.count("unknown-ca") == 1
    assert store.read_svids(setup.directory) == {}
    # The ConfigMap brings the CA's root (an overlap: both): the retry succeeds.
    setup.manager.set_bundle(TD, root_pem(stranger) + root_pem(setup.ca))
    setup.clock.now = START + 1.0
    setup.manager.step()
    assert list(store.read_svids(setup.directory)) == [WEB]


def test_a_root_leaving_the_bundle_refetches_under_the_new_one(setup: Setup) -> None:
    setup.manager.set_bundle(TD, root_pem(setup.ca))
    setup.manager.step()
    old = setup.manager.held[WEB]
    # The old root leaves the bundle (the CA now signs under another root: a rotation).
    new_ca = CertificateAuthority.generate_root(
        "rotated root", setup.clock.at() - timedelta(days=1)
    )
    setup.manager.set_bundle(TD, root_pem(new_ca))
    assert setup.manager.held[WEB].root == ""  # not under any root trusted now
    # The servicer still signs under the old root: its chain is refused, not written.
    setup.clock.now = START + 5.0
    setup.manager.step()
    assert setup.count("unknown-ca") == 1
    assert setup.manager.held[WEB].serial == old.serial  # the old file stays until replaced


@pytest.mark.parametrize(
    ("trust_domain", "pem", "why"),
    [
        ("other.domain", None, "trust domain 'other.domain'"),
        (TD, b"not pem", "not PEM"),
        (TD, b"", "not PEM"),
    ],
)
def test_an_invalid_bundle_keeps_the_last_good_one(
    setup: Setup,
    trust_domain: str,
    pem: bytes | None,
    why: str,
) -> None:
    good = root_pem(setup.ca)
    assert setup.manager.set_bundle(TD, good)
    assert not setup.manager.set_bundle(trust_domain, good if pem is None else pem)
    assert store.read_bundle(setup.directory) == good
    report = setup.manager.report()["trust_bundle"]
    assert why in report["error"]
    assert [r["fingerprint"] for r in report["roots"]] == [fingerprint(setup.ca.root)]
    assert setup.manager.set_bundle(TD, good)
    assert setup.manager.report()["trust_bundle"]["error"] is None


def test_a_restart_keeps_what_the_directory_holds(setup: Setup, tmp_path: Path) -> None:
    setup.manager.set_bundle(TD, root_pem(setup.ca))
    setup.manager.step()
    client = CertificateClient("unix:/nonexistent", lambda: TOKEN)
    again = SvidManager(
        SvidConfig(setup.directory, TD, lifetime=60),
        client,
        lambda: frozenset({WEB}),
        clock=setup.clock,
    )
    assert again.held[WEB].serial == setup.manager.held[WEB].serial
    assert again.held[WEB].root == fingerprint(setup.ca.root)
    assert again.step() is not None  # nothing due: no call to the (absent) CA
    client.close()


HOST = "tulle-controlplane.tulle-system.svc"


def test_over_tls_the_client_trusts_the_bundle_and_the_service_name_only(
    tmp_path: Path,
) -> None:
    from tests.unit.identity.helpers import cert, key_pem, p256, usage

    # The TLS stack checks against the real clock.
    wall = datetime.now(UTC)
    ca = CertificateAuthority.generate_root("tls root", wall - timedelta(days=1))
    key = p256()

    def serving(name: str) -> grpc.ServerCredentials:
        leaf = cert(
            key,
            (ca.cert, ca.key),
            sans=[x509.DNSName(name)],
            key_usage=usage(sign=True),
            start=wall - timedelta(hours=1),
            end=wall + timedelta(hours=1),
        )
        return grpc.ssl_server_credentials(
            [(key_pem(key), leaf.public_bytes(Encoding.PEM) + root_pem(ca))]
        )

    pods = [PodRecord("shop", "web-1", "n1", "web")]
    servicer = CertificateServicer(
        ca,
        TD,
        StaticTokens({TOKEN: Caller("n1", AGENT_ACCOUNT)}),
        lambda node: pods,
        registry=CollectorRegistry(),
    )
    right, right_port = serve(servicer, "127.0.0.1:0", serving(HOST))
    wrong, wrong_port = serve(servicer, "127.0.0.1:0", serving("someone.else.svc"))
    clients: list[CertificateClient] = []

    def manager(port: int, name: str) -> tuple[SvidManager, CollectorRegistry]:
        registry = CollectorRegistry()
        client = CertificateClient(f"127.0.0.1:{port}", lambda: TOKEN, timeout=5)
        clients.append(client)
        made = SvidManager(
            SvidConfig(tmp_path / name, TD, lifetime=60),
            client,
            lambda: frozenset({WEB}),
            registry=registry,
        )
        made.set_bundle(TD, root_pem(ca))
        return made, registry

    try:
        good, good_metrics = manager(right_port, "good")
        good.step()
        assert list(store.read_svids(tmp_path / "good")) == [WEB]
        assert good_metrics.get_sample_value("tulle_svid_requests_total", {"result": "issued"}) == 1
        # A server whose certificate is not for the service's name gets no token.
        bad, bad_metrics = manager(wrong_port, "bad")
        bad.step()
        assert store.read_svids(tmp_path / "bad") == {}
        assert (
            bad_metrics.get_sample_value("tulle_svid_requests_total", {"result": "unavailable"})
            == 1
        )
    finally:
        for client in clients:
            client.close()
        right.stop(None).wait()
        wrong.stop(None).wait()
