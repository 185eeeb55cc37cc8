"""Lab cluster DNS: answer() over a table of cases, then UDP/TCP round-trips on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.dns.server import (
    TTL,
    DnsServer,
    DnsTable,
    PodRecord,
    ServicePort,
    ServiceRecord,
    answer,
    answer_wire,
    resolv_conf,
)

SERVICES = (
    ServiceRecord(
        "web",
        "shop",
        cluster_ips=("10.96.0.10",),
        ports=(ServicePort("http", "TCP", 80), ("", "TCP", 8081), ("dns", "UDP", 53)),
    ),
    ServiceRecord(
        "db",
        "shop",
        headless_ips=("10.244.1.5", "10.244.2.6"),
        ports=(("pg", "TCP", 5432),),
    ),
    ServiceRecord("empty", "shop", cluster_ips=("None",)),  # headless, no ready endpoints
    ServiceRecord("dual", "v6", cluster_ips=("10.96.0.11", "fd00::11")),
)
PODS = (PodRecord("web-0", "shop", "10.244.1.5"), PodRecord("v6pod", "v6", "fd00::5"))


@pytest.fixture(scope="module")
def table() -> DnsTable:
    return DnsTable.build(SERVICES, PODS)


def ask(table: DnsTable, name: str, rdtype: str = "A") -> dns.message.Message:
    return answer(table, dns.message.make_query(name, rdtype))


def texts(response: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(rd.to_text() for rrset in getattr(response, section) for rd in rrset)


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "expected"),
    [
        ("web.shop.svc.cluster.local", "A", "NOERROR", ["10.96.0.10"]),
        ("WEB.Shop.SVC.cluster.LOCAL.", "A", "NOERROR", ["10.96.0.10"]),
        ("web.shop.svc.cluster.local", "AAAA", "NOERROR", []),  # NODATA
        ("db.shop.svc.cluster.local", "A", "NOERROR", ["10.244.1.5", "10.244.2.6"]),
        ("10-244-2-6.db.shop.svc.cluster.local", "A", "NOERROR", ["10.244.2.6"]),
        ("empty.shop.svc.cluster.local", "A", "NOERROR", []),
        ("dual.v6.svc.cluster.local", "A", "NOERROR", ["10.96.0.11"]),
        ("dual.v6.svc.cluster.local", "AAAA", "NOERROR", ["fd00::11"]),
        ("10-244-1-5.shop.pod.cluster.local", "A", "NOERROR", ["10.244.1.5"]),
        ("fd00--5.v6.pod.cluster.local", "AAAA", "NOERROR", ["fd00::5"]),
        ("10-244-1-5.shop.pod.cluster.local", "AAAA", "NOERROR", []),
        ("10-9-9-9.shop.pod.cluster.local", "A", "NXDOMAIN", []),  # pods are verified
        ("nope.shop.svc.cluster.local", "A", "NXDOMAIN", []),
        ("web.other.svc.cluster.local", "A", "NXDOMAIN", []),
        ("web.shop.svc.cluster.local.shop.svc.cluster.local", "A", "NXDOMAIN", []),
        ("shop.svc.cluster.local", "A", "NOERROR", []),  # empty non-terminal
        ("svc.cluster.local", "A", "NOERROR", []),
        ("_tcp.web.shop.svc.cluster.local", "A", "NOERROR", []),
        ("example.com", "A", "REFUSED", []),
        ("in-addr.arpa", "PTR", "REFUSED", []),
        ("local", "A", "REFUSED", []),  # the parent of the domain is outside it
    ],
)
def test_answer_table(
    table: DnsTable, name: str, rdtype: str, rcode: str, expected: list[str]
) -> None:
    response = ask(table, name, rdtype)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert texts(response) == sorted(expected)
    assert all(rrset.ttl == TTL for rrset in response.answer)
    assert not response.flags & dns.flags.RA  # no recursion: the lab has no upstream
    if rcode == "REFUSED":
        assert not response.flags & dns.flags.AA
    else:
        assert response.flags & dns.flags.AA
    if rcode == "NXDOMAIN" or (rcode == "NOERROR" and not expected):
        # Negative answers carry the SOA so resolvers can cache them (RFC 2308).
        [soa] = response.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == TTL


def test_answer_keeps_the_askers_case(table: DnsTable) -> None:
    response = ask(table, "Web.Shop.Svc.Cluster.Local", "A")
    assert response.answer[0].name.to_text() == "Web.Shop.Svc.Cluster.Local."


def test_srv_for_cluster_ip_service(table: DnsTable) -> None:
    response = ask(table, "_http._tcp.web.shop.svc.cluster.local", "SRV")
    assert texts(response) == ["0 100 80 web.shop.svc.cluster.local."]
    assert texts(response, "additional") == ["10.96.0.10"]
    udp = ask(table, "_dns._udp.web.shop.svc.cluster.local", "SRV")
    assert texts(udp) == ["0 100 53 web.shop.svc.cluster.local."]
    # Wrong protocol, or an unnamed port, has no SRV record.
    assert ask(table, "_http._udp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(table, "_8081._tcp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    # SRV lives on the _port._proto names only.
    assert texts(ask(table, "web.shop.svc.cluster.local", "SRV")) == []


def test_srv_for_headless_service_targets_each_endpoint(table: DnsTable) -> None:
    response = ask(table, "_PG._TCP.db.shop.svc.cluster.local", "SRV")
    assert texts(response) == [
        "0 50 5432 10-244-1-5.db.shop.svc.cluster.local.",
        "0 50 5432 10-244-2-6.db.shop.svc.cluster.local.",
    ]
    assert texts(response, "additional") == ["10.244.1.5", "10.244.2.6"]


def test_any_and_soa(table: DnsTable) -> None:
    assert texts(ask(table, "dual.v6.svc.cluster.local", "ANY")) == ["10.96.0.11", "fd00::11"]
    soa = ask(table, "cluster.local", "SOA")
    assert soa.rcode() == dns.rcode.NOERROR and soa.answer[0].rdtype == dns.rdatatype.SOA


def test_other_domain_and_rejected_records() -> None:
    table = DnsTable.build(
        [
            ServiceRecord("ok", "ns", cluster_ips=("10.0.0.1",)),
            ServiceRecord("ok", "ns", cluster_ips=("10.0.0.2",)),  # duplicate
            ServiceRecord("Bad_Name", "ns", cluster_ips=("10.0.0.3",)),
            ServiceRecord("badip", "ns", cluster_ips=("10.0.0.999",)),
            ServiceRecord("badport", "ns", cluster_ips=("10.0.0.4",), ports=(("x", "TCP", 0),)),
        ],
        [PodRecord("p", "ns", "not-an-ip")],
        domain="lab.test",
        serial=42,
    )
    assert texts(ask(table, "ok.ns.svc.lab.test")) == ["10.0.0.1"]
    assert ask(table, "ok.ns.svc.cluster.local").rcode() == dns.rcode.REFUSED
    assert texts(ask(table, "badport.ns.svc.lab.test")) == ["10.0.0.4"]  # the rest still works
    assert "42" in texts(ask(table, "lab.test", "SOA"))[0]
    rejected = "\n".join(table.rejected)
    for fragment in (
        "ns/ok: duplicate",
        "ns/Bad_Name",
        "10.0.0.999",
        "('x', 'TCP', 0)",
        "pod ns/p",
    ):
        assert fragment in rejected


def test_names_too_long_for_dns_are_rejected() -> None:
    domain = ".".join(["d" * 60] * 3)  # leaves too little room for svc.ns.svc labels
    service = ServiceRecord("s" * 60, "n" * 60, cluster_ips=("10.0.0.1",))
    table = DnsTable.build([service], [], domain=domain)
    assert len(table.rejected) == 1 and "service" in table.rejected[0]


def test_table_is_immutable(table: DnsTable) -> None:
    with pytest.raises(AttributeError):
        table.serial = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        table.records[table.domain] = {}  # type: ignore[index]


def test_formerr_notimp_and_refused_cases(table: DnsTable) -> None:
    two = dns.message.make_query("web.shop.svc.cluster.local", "A")
    two.question.append(two.question[0])
    assert answer(table, two).rcode() == dns.rcode.FORMERR
    notify = dns.message.make_query("web.shop.svc.cluster.local", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert answer(table, notify).rcode() == dns.rcode.NOTIMP
    chaos = dns.message.make_query("web.shop.svc.cluster.local", "TXT", rdclass="CH")
    assert answer(table, chaos).rcode() == dns.rcode.REFUSED


def test_answer_wire_malformed_inputs(table: DnsTable) -> None:
    assert answer_wire(table, b"", udp=True) == (None, "dropped")
    assert answer_wire(table, b"\x12\x34\x01", udp=True) == (None, "dropped")
    # A parseable header with garbage after it: FORMERR with the same id and RD.
    reply, outcome = answer_wire(
        table, b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff", udp=True
    )
    assert outcome == "formerr" and reply is not None
    qid, flags = struct.unpack("!HH", reply[:4])
    assert qid == 0xBEEF and flags & dns.flags.QR and flags & dns.flags.RD
    assert flags & 0xF == dns.rcode.FORMERR
    # Responses are never answered (no reflection loops).
    response = answer(table, dns.message.make_query("web.shop.svc.cluster.local", "A"))
    assert answer_wire(table, response.to_wire(), udp=True) == (None, "dropped")


def test_answer_wire_servfail_without_table() -> None:
    query = dns.message.make_query("web.shop.svc.cluster.local", "A")
    reply, outcome = answer_wire(None, query.to_wire(), udp=True)
    assert outcome == "servfail" and reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL


def test_answer_wire_truncates_big_udp_answers() -> None:
    ips = tuple(f"10.1.{i // 250}.{i % 250 + 1}" for i in range(100))
    table = DnsTable.build([ServiceRecord("big", "ns", headless_ips=ips)], [])
    query = dns.message.make_query("big.ns.svc.cluster.local", "A")  # no EDNS: 512 bytes
    reply, _ = answer_wire(table, query.to_wire(), udp=True)
    assert reply is not None and len(reply) <= 512
    assert dns.message.from_wire(reply).flags & dns.flags.TC
    full, _ = answer_wire(table, query.to_wire(), udp=False)
    assert full is not None and len(dns.message.from_wire(full).answer[0]) == 100


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_answer_wire_never_raises(wire: bytes) -> None:
    table = DnsTable.build(SERVICES, PODS)
    reply, outcome = answer_wire(table, wire, udp=True)
    assert outcome in {"answered", "formerr", "dropped", "servfail"}
    assert reply is None or len(reply) <= 1232


def test_resolv_conf() -> None:
    assert resolv_conf("shop", "169.254.20.10") == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 169.254.20.10\n"
        "options ndots:5\n"
    )
    assert "search a.svc.lab.test svc.lab.test lab.test" in resolv_conf("a", "::1", "lab.test")


# --- the server over loopback ---------------------------------------------------------


class Running:
    def __init__(self, server: DnsServer, port: int) -> None:
        self.server = server
        self.port = port
        self.table = DnsTable.build(SERVICES, PODS)

    def provide(self) -> DnsTable:
        return self.table


@pytest.fixture
def running() -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    holder: list[Running] = []
    server = DnsServer(lambda: holder[0].provide(), "127.0.0.1", 0)
    port = loop.run_until_complete(server.start())
    holder.append(Running(server, port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_udp_and_tcp_round_trips(running: Running) -> None:
    query = dns.message.make_query("web.shop.svc.cluster.local", "A")
    udp = dns.query.udp(query, "127.0.0.1", port=running.port, timeout=2)
    assert texts(udp) == ["10.96.0.10"] and udp.id == query.id
    query = dns.message.make_query("_pg._tcp.db.shop.svc.cluster.local", "SRV")
    tcp = dns.query.tcp(query, "127.0.0.1", port=running.port, timeout=2)
    assert len(tcp.answer[0]) == 2
    nx_query = dns.message.make_query("x.shop.svc.cluster.local", "A")
    nx = dns.query.udp(nx_query, "127.0.0.1", port=running.port, timeout=2)
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert running.server.stats["answered"] == 3


def test_table_swap_is_seen_by_the_next_query(running: Running) -> None:
    query = dns.message.make_query("new.shop.svc.cluster.local", "A")
    assert dns.query.udp(query, "127.0.0.1", port=running.port, timeout=2).rcode() == 3
    running.table = DnsTable.build([ServiceRecord("new", "shop", cluster_ips=("10.96.0.99",))], [])
    assert texts(dns.query.udp(query, "127.0.0.1", port=running.port, timeout=2)) == ["10.96.0.99"]


def test_malformed_packets_do_not_kill_the_server(running: Running) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\x00", ("127.0.0.1", running.port))  # too short: dropped
        s.sendto(
            b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0", ("127.0.0.1", running.port)
        )
        reply, _ = s.recvfrom(512)
        assert reply[:2] == b"\xab\xcd" and reply[3] & 0xF == dns.rcode.FORMERR
    with socket.create_connection(("127.0.0.1", running.port), timeout=2) as s:
        s.sendall(b"\x00\x05hello")  # framed garbage over TCP
        assert s.recv(100) == b""  # dropped: the server just closes this stream
    with socket.create_connection(("127.0.0.1", running.port), timeout=2) as s:
        s.sendall(b"\x00\x30ab")  # truncated frame, then hang up
    running.table = None  # type: ignore[assignment]  # a broken provider: SERVFAIL
    query = dns.message.make_query("web.shop.svc.cluster.local", "A")
    assert dns.query.udp(query, "127.0.0.1", port=running.port, timeout=2).rcode() == 2
    running.table = DnsTable.build(SERVICES, PODS)
    for transport in (dns.query.udp, dns.query.tcp):
        still = transport(query, "127.0.0.1", port=running.port, timeout=2)
        assert texts(still) == ["10.96.0.10"]
    stats = running.server.stats
    assert stats["dropped"] >= 2 and stats["formerr"] >= 1 and stats["servfail"] >= 1


def test_provider_exception_is_servfail_and_counted() -> None:
    def broken() -> DnsTable:
        raise RuntimeError("store unavailable")

    async def run() -> tuple[int, int]:
        server = DnsServer(broken, "127.0.0.1", 0)
        port = await server.start()
        try:
            query = dns.message.make_query("web.shop.svc.cluster.local", "A")
            response = await asyncio.to_thread(
                dns.query.udp, query, "127.0.0.1", timeout=2, port=port
            )
            return response.rcode(), server.stats["provider_errors"]
        finally:
            await server.close()

    assert asyncio.run(run()) == (dns.rcode.SERVFAIL, 1)
