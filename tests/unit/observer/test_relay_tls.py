"""Relay-to-agent mTLS over loopback (real TLS through grpcio): the right certificates get
flows; every bad certificate is refused by the side that checks it, and the relay says why."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent.observer.certgen import Authority, Pair, generate, issue, new_ca, relay_name
from agent.observer.client import ObserverClient
from agent.observer.convert import FlowsQuery
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.relay import Relay
from agent.observer.server import ObserverServer
from agent.observer.tls import (
    ClientTls,
    ServerTls,
    TlsConfigError,
    TlsFiles,
    _peer_leaf,
    server_name,
)
from tests.unit.observer.test_relay import flow_ids, ring_with, statuses

NODE = "node-1"
AGENT_NAME = "*.default.observer.tulle.io"
LONG_AGO = datetime.datetime(2020, 1, 1)


def write(directory: Path, pair: Pair, ca_pem: bytes) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem), ("ca.crt", ca_pem)):
        tmp = directory / f".{name}.new"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)  # a new inode, as a Secret volume's swap
    return TlsFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")


@pytest.fixture(scope="module")
def ca() -> Authority:
    return new_ca("test observer CA")


@pytest.fixture(scope="module")
def other_ca() -> Authority:
    return new_ca("someone else's CA")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Callable[[TlsFiles], ObserverServer]]:
    started: list[ObserverServer] = []

    def start(files: TlsFiles) -> ObserverServer:
        server = ObserverServer(ring_with(NODE, [1, 2, 3]), NODE, tcp_address="127.0.0.1:0",
                                tls=ServerTls(files))
        started.append(server.start())
        return server

    yield start
    for s in started:
        s.stop(grace=0)


@pytest.fixture
def relay_of(tmp_path: Path) -> Iterator[Callable[[ObserverServer, TlsFiles], ObserverClient]]:
    started: list[tuple[Relay, ObserverClient]] = []

    def start(node: ObserverServer, files: TlsFiles) -> ObserverClient:
        sock = tmp_path / f"relay{len(started)}.sock"
        relay = Relay([(NODE, f"127.0.0.1:{node.tcp_port}")], tcp_address=None,
                      unix_socket=sock, tls=ClientTls(files), connect_timeout=3.0).start()
        client = ObserverClient(str(sock))
        started.append((relay, client))
        return client

    yield start
    for relay, client in started:
        client.close()
        relay.stop(grace=0)


def relay_files(tmp_path: Path, ca: Authority, **kw: object) -> TlsFiles:
    return write(tmp_path / "relay", issue(ca, relay_name(), client=True, **kw),  # type: ignore[arg-type]
                 ca.cert_pem)


def agent_files(tmp_path: Path, ca: Authority, name: str = AGENT_NAME, **kw: object) -> TlsFiles:
    return write(tmp_path / "agent", issue(ca, name, client=False, **kw),  # type: ignore[arg-type]
                 ca.cert_pem)


def unavailable(client: ObserverClient) -> str:
    events = list(client.get_flows(FlowsQuery(number=10)))
    assert not flow_ids(events)
    state, message = statuses(events)[NODE]
    assert state == "NODE_UNAVAILABLE"
    return message


def test_the_relay_with_the_right_certificates_gets_the_flows(
        tmp_path: Path, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    pki = generate()  # what `tulle certs relay` writes
    node = agent(write(tmp_path / "agent", pki.agent, pki.ca_pem))
    client = relay_of(node, write(tmp_path / "relay", pki.relay, pki.ca_pem))
    events = list(client.get_flows(FlowsQuery(number=10)))
    assert flow_ids(events) == [f"{NODE}@1", f"{NODE}@2", f"{NODE}@3"]
    assert statuses(events)[NODE][0] == "NODE_CONNECTED"


def test_the_agents_name_has_one_label_per_part() -> None:
    assert server_name("ip-10-0-0-1.ec2.internal", "prod.eu") == \
        "ip-10-0-0-1-ec2-internal.prod-eu.observer.tulle.io"
    with pytest.raises(ValueError, match="node name"):
        server_name("")


def _status(channel: grpc.Channel) -> grpc.StatusCode:
    with channel:
        try:
            pb_grpc.ObserverStub(channel).ServerStatus(pb.ServerStatusRequest(), timeout=3)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_a_client_without_a_certificate_is_refused(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer]) -> None:
    node = agent(agent_files(tmp_path, ca))
    address = f"127.0.0.1:{node.tcp_port}"
    name = [("grpc.ssl_target_name_override", server_name(NODE))]
    no_cert = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.cert_pem),
                                  options=name)
    assert _status(no_cert) == grpc.StatusCode.UNAVAILABLE
    assert _status(grpc.insecure_channel(address)) == grpc.StatusCode.UNAVAILABLE  # plaintext
    files = relay_files(tmp_path, ca)  # the same channel with the relay's pair is answered
    with_cert = grpc.secure_channel(address, grpc.ssl_channel_credentials(
        ca.cert_pem, files.key.read_bytes(), files.cert.read_bytes()), options=name)
    assert _status(with_cert) == grpc.StatusCode.OK


def test_a_client_certificate_from_another_ca_is_refused_and_the_relay_says_so(
        tmp_path: Path, ca: Authority, other_ca: Authority,
        agent: Callable[..., ObserverServer], relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(agent_files(tmp_path, ca))
    foreign = write(tmp_path / "relay", issue(other_ca, relay_name(), client=True), ca.cert_pem)
    message = unavailable(relay_of(node, foreign))
    assert "the agent refused the relay's client certificate" in message
    assert "someone else's CA" in message  # the relay's certificate, described


def test_an_expired_client_certificate_is_refused(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(agent_files(tmp_path, ca))
    message = unavailable(relay_of(node, relay_files(tmp_path, ca, not_before=LONG_AGO)))
    assert "the agent refused the relay's client certificate" in message
    assert "the relay's certificate expired on 2020-12-31" in message


def test_the_agents_certificate_cannot_stand_in_for_the_relays(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    """serverAuth only: a stolen agent pair does not read other agents' flows."""
    node = agent(agent_files(tmp_path, ca))
    as_client = write(tmp_path / "relay", issue(ca, AGENT_NAME, client=False), ca.cert_pem)
    assert "the agent refused the relay's client certificate" in unavailable(
        relay_of(node, as_client))


def test_a_server_certificate_with_the_wrong_name_is_refused_with_the_name(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(agent_files(tmp_path, ca, name="*.other-cluster.observer.tulle.io"))
    message = unavailable(relay_of(node, relay_files(tmp_path, ca)))
    assert "the relay refused the agent's certificate" in message
    assert "expected the name node-1.default.observer.tulle.io" in message
    assert "for *.other-cluster.observer.tulle.io" in message  # what the agent holds


def test_an_expired_server_certificate_is_refused(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(agent_files(tmp_path, ca, not_before=LONG_AGO))
    message = unavailable(relay_of(node, relay_files(tmp_path, ca)))
    assert "the relay refused the agent's certificate: certificate has expired" in message


def test_a_server_certificate_from_another_ca_is_refused(
        tmp_path: Path, ca: Authority, other_ca: Authority,
        agent: Callable[..., ObserverServer], relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(write(tmp_path / "agent", issue(other_ca, AGENT_NAME, client=False),
                       ca.cert_pem))
    message = unavailable(relay_of(node, relay_files(tmp_path, ca)))
    assert "the relay refused the agent's certificate: unable to get local issuer" in message
    assert "issued by CN=someone else's CA" in message


def test_the_agent_serves_renewed_files_and_keeps_the_last_good_pair(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer]) -> None:
    first = agent_files(tmp_path, ca)
    node = agent(first)
    address = f"127.0.0.1:{node.tcp_port}"
    served = _peer_leaf(address, 3)
    assert served is not None
    renewed = issue(ca, AGENT_NAME, client=False)
    write(tmp_path / "agent", renewed, ca.cert_pem)
    now = _peer_leaf(address, 3)
    assert now is not None and now.serial_number != served.serial_number
    (tmp_path / "agent" / "tls.key").write_bytes(b"not a key")  # a broken rotation
    kept = _peer_leaf(address, 3)
    assert kept is not None and kept.serial_number == now.serial_number


def test_unusable_files_get_an_error_naming_the_file(tmp_path: Path, ca: Authority) -> None:
    good = agent_files(tmp_path, ca)
    missing = TlsFiles(tmp_path / "nope.crt", good.key, good.ca)
    with pytest.raises(TlsConfigError, match=r"cannot read the agent certificate .*nope\.crt"):
        ServerTls(missing)
    other_key = write(tmp_path / "other", issue(ca, AGENT_NAME, client=False), ca.cert_pem).key
    with pytest.raises(TlsConfigError, match="is not the key of .*different pairs"):
        ServerTls(TlsFiles(good.cert, other_key, good.ca))
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello")
    with pytest.raises(TlsConfigError, match="the relay CA bundle: no PEM certificate"):
        ClientTls(TlsFiles(good.cert, good.key, garbage))
    with pytest.raises(TlsConfigError, match="not an unencrypted PEM private key"):
        ClientTls(TlsFiles(good.cert, garbage, good.ca))


def test_the_relay_dials_with_its_renewed_pair(
        tmp_path: Path, ca: Authority, agent: Callable[..., ObserverServer],
        relay_of: Callable[..., ObserverClient]) -> None:
    node = agent(agent_files(tmp_path, ca))
    client = relay_of(node, relay_files(tmp_path, ca, not_before=LONG_AGO))
    assert "the agent refused the relay's client certificate" in unavailable(client)
    relay_files(tmp_path, ca)  # renewed in place, as the kubelet updates a Secret volume
    events = list(client.get_flows(FlowsQuery(number=10)))
    assert flow_ids(events) == [f"{NODE}@1", f"{NODE}@2", f"{NODE}@3"]
