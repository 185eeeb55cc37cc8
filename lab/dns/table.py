"""Pure half of the lab cluster DNS: the frozen name table and the answering logic.

No sockets here: ``DnsTable.build`` turns Service and Pod records into an immutable
snapshot, ``answer`` maps a parsed query to a response, and ``answer_wire`` does the
bytes-in/bytes-out step (parse errors, SERVFAIL, UDP truncation) that the server in
``lab.dns.server`` wraps. See that module for the names served.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger(__name__)

TTL = 5
DEFAULT_DOMAIN = "cluster.local"
# Advertised EDNS payload: the DNS Flag Day 2020 value, safe against fragmentation.
EDNS_PAYLOAD = 1232

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
_IN = dns.rdataclass.IN
_A, _AAAA, _SRV, _SOA = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.SOA)


class ServicePort(NamedTuple):
    """A Service port; a plain ``(name, protocol, port)`` tuple works the same."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    namespace: str
    cluster_ips: tuple[str, ...] = ()  # empty (or "None") means headless
    headless_ips: tuple[str, ...] = ()  # ready endpoint IPs, used when headless
    ports: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class PodRecord:
    name: str
    namespace: str
    ip: str


Rdatas = Mapping[int, tuple[dns.rdata.Rdata, ...]]


@dataclass(frozen=True)
class DnsTable:
    """An immutable snapshot of every name the cluster DNS answers for."""

    domain: dns.name.Name
    records: Mapping[dns.name.Name, Rdatas]
    names: frozenset[dns.name.Name]  # records' owners plus all their in-domain ancestors
    rejected: tuple[str, ...] = ()  # why inputs were left out, naming object and field
    serial: int = 1

    @classmethod
    def build(
        cls,
        services: Iterable[ServiceRecord],
        pods: Iterable[PodRecord],
        domain: str = DEFAULT_DOMAIN,
        *,
        serial: int = 1,
    ) -> DnsTable:
        """Build a table; invalid records are skipped and explained in ``rejected``."""
        builder = _Builder(dns.name.from_text(domain.lower()), serial)
        for service in services:
            try:
                builder.add_service(service)
            except dns.exception.DNSException as exc:  # e.g. a name over 255 octets
                builder.rejected.append(f"service {service.namespace}/{service.name}: {exc}")
        for pod in pods:
            try:
                builder.add_pod(pod)
            except dns.exception.DNSException as exc:
                builder.rejected.append(f"pod {pod.namespace}/{pod.name}: {exc}")
        return builder.freeze()

    @classmethod
    def empty(cls, domain: str = DEFAULT_DOMAIN) -> DnsTable:
        return cls.build((), (), domain)

    def lookup(self, name: dns.name.Name, rdtype: int) -> tuple[dns.rdata.Rdata, ...]:
        return self.records.get(name, {}).get(rdtype, ())


class _Builder:
    """Mutable accumulator behind ``DnsTable.build``; never escapes it."""

    def __init__(self, domain: dns.name.Name, serial: int) -> None:
        self.domain = domain
        self.serial = serial
        self.records: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
        self.rejected: list[str] = []
        self.seen_services: set[tuple[str, str]] = set()
        soa = (
            f"ns.dns.{domain.to_text()} hostmaster.{domain.to_text()} "
            f"{serial} 7200 1800 86400 {TTL}"
        )
        self._add(domain, dns.rdata.from_text(_IN, _SOA, soa))
        # svc.<domain> and pod.<domain> exist even in an empty cluster.
        for zone in ("svc", "pod"):
            self.records.setdefault(dns.name.Name((zone.encode(),)).concatenate(domain), {})

    def _add(self, name: dns.name.Name, rdata: dns.rdata.Rdata) -> None:
        existing = self.records.setdefault(name, {}).setdefault(rdata.rdtype, [])
        if rdata not in existing:
            existing.append(rdata)

    def _address(
        self, name: dns.name.Name, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        rdtype = _A if ip.version == 4 else _AAAA
        self._add(name, dns.rdata.from_text(_IN, rdtype, str(ip)))

    def _name(self, *labels: str) -> dns.name.Name:
        return dns.name.Name(tuple(label.encode() for label in labels)).concatenate(self.domain)

    def _ips(
        self, what: str, field: str, values: Iterable[str]
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        ips = []
        for value in values:
            if value in ("", "None"):
                continue
            try:
                ips.append(ipaddress.ip_address(value))
            except ValueError:
                self.rejected.append(f"{what}: {field}: {value!r} is not an IP address")
        return ips

    def add_service(self, s: ServiceRecord) -> None:
        name, ns = s.name.lower(), s.namespace.lower()
        what = f"service {s.namespace}/{s.name}"
        if not (_valid_label(name) and _valid_label(ns)):
            self.rejected.append(f"{what}: name/namespace must be DNS labels (a-z, 0-9, '-')")
            return
        if (ns, name) in self.seen_services:
            self.rejected.append(f"{what}: duplicate service, the first one is kept")
            return
        self.seen_services.add((ns, name))
        owner = self._name(name, ns, "svc")
        self.records.setdefault(owner, {})
        cluster_ips = self._ips(what, "cluster_ips", s.cluster_ips)
        headless = not any(v not in ("", "None") for v in s.cluster_ips)
        # SRV targets: the service name itself, or one name per endpoint when headless.
        targets: list[dns.name.Name] = []
        if headless:
            for ip in self._ips(what, "headless_ips", s.headless_ips):
                host = self._name(_dashed(ip), name, ns, "svc")
                self._address(owner, ip)
                self._address(host, ip)
                if host not in targets:
                    targets.append(host)
        else:
            for ip in cluster_ips:
                self._address(owner, ip)
            targets.append(owner)
        for port in s.ports:
            self._add_port(what, name, ns, port, targets)

    def _add_port(
        self,
        what: str,
        name: str,
        ns: str,
        port: tuple[str, str, int],
        targets: list[dns.name.Name],
    ) -> None:
        try:
            port_name, protocol, number = port
            port_name, protocol, number = str(port_name).lower(), str(protocol).lower(), int(number)
        except (TypeError, ValueError):
            self.rejected.append(f"{what}: ports: {port!r} is not (name, protocol, port)")
            return
        if not port_name:
            return  # unnamed ports have no SRV record, as in Kubernetes
        if not _valid_label(port_name) or protocol not in _PROTOCOLS or not 0 < number < 65536:
            self.rejected.append(f"{what}: ports: {port!r} has an invalid name, protocol or port")
            return
        srv_owner = self._name(f"_{port_name}", f"_{protocol}", name, ns, "svc")
        # Equal priority; weights split 100 across endpoints like CoreDNS does.
        weight = max(1, 100 // max(1, len(targets)))
        for target in targets:
            srv = f"0 {weight} {number} {target.to_text()}"
            self._add(srv_owner, dns.rdata.from_text(_IN, _SRV, srv))

    def add_pod(self, p: PodRecord) -> None:
        what = f"pod {p.namespace}/{p.name}"
        ns = p.namespace.lower()
        if not _valid_label(ns):
            self.rejected.append(f"{what}: namespace must be a DNS label")
            return
        for ip in self._ips(what, "ip", (p.ip,)):
            self._address(self._name(_dashed(ip), ns, "pod"), ip)

    def freeze(self) -> DnsTable:
        records = {
            name: MappingProxyType({t: tuple(rds) for t, rds in types.items()})
            for name, types in self.records.items()
        }
        names: set[dns.name.Name] = set()
        for owner in records:
            # Every ancestor inside the domain exists (RFC 8020): NODATA there, not NXDOMAIN.
            n = owner
            while n.is_subdomain(self.domain) and n not in names:
                names.add(n)
                n = n.parent()
        return DnsTable(
            domain=self.domain,
            records=MappingProxyType(records),
            names=frozenset(names),
            rejected=tuple(self.rejected),
            serial=self.serial,
        )


def _valid_label(label: str) -> bool:
    return _LABEL.fullmatch(label) is not None


def _dashed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # Kubernetes' IP-derived host label: 10.1.2.3 -> 10-1-2-3, fd00::1 -> fd00--1.
    return str(ip).replace(".", "-").replace(":", "-")


# --- answering ------------------------------------------------------------------------


def _rrset(name: dns.name.Name, rdatas: Iterable[dns.rdata.Rdata]) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, TTL, list(rdatas))


def answer(table: DnsTable, query: dns.message.Message) -> dns.message.Message:
    """Answer one parsed query from ``table`` (never raises for a well-formed message)."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname, rdtype = question.name, question.rdtype
    if question.rdclass not in (_IN, dns.rdataclass.ANY) or not qname.is_subdomain(table.domain):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    response.flags |= dns.flags.AA
    if qname not in table.names:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_rrset(table.domain, table.lookup(table.domain, _SOA)))
        return response
    types = table.records.get(qname, {})
    wanted = [t for t in types if types[t]] if rdtype == dns.rdatatype.ANY else [rdtype]
    for t in wanted:
        if types.get(t):
            # Owner is the name as asked, so clients using 0x20 case randomisation match.
            response.answer.append(_rrset(qname, types[t]))
    if not response.answer:
        response.authority.append(_rrset(table.domain, table.lookup(table.domain, _SOA)))
        return response
    if rdtype == _SRV:
        for srv in types[_SRV]:
            target = srv.target  # type: ignore[attr-defined]
            for t in (_A, _AAAA):
                if table.lookup(target, t):
                    response.additional.append(_rrset(target, table.lookup(target, t)))
    return response


class WireAnswer(NamedTuple):
    reply: bytes | None  # None: send nothing
    outcome: str  # "answered", "formerr", "servfail", "dropped"


_HEADER = struct.Struct("!HHHHHH")


def answer_wire(table: DnsTable | None, wire: bytes, *, udp: bool) -> WireAnswer:
    """Bytes in, bytes out: parse, answer, and size the reply for the transport.

    ``table`` None means the owner could not provide one: answer SERVFAIL.
    """
    if len(wire) < _HEADER.size:
        return WireAnswer(None, "dropped")  # not even a header: nobody to answer
    qid, flags = _HEADER.unpack_from(wire)[:2]
    if flags & dns.flags.QR:
        return WireAnswer(None, "dropped")  # a response, maybe spoofed: never reflect it
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return WireAnswer(_bare_reply(qid, flags, dns.rcode.FORMERR), "formerr")
    try:
        if table is None:
            raise LookupError("no DNS table available")
        response = answer(table, query)
        outcome = "answered"
    except Exception:
        log.exception("dns: answering %s failed", query.question)
        response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.set_rcode(dns.rcode.SERVFAIL)
        outcome = "servfail"
    limit = 65535
    if udp:
        limit = max(512, min(query.payload, EDNS_PAYLOAD)) if query.edns >= 0 else 512
    # prefer_truncation: drop records and set TC so the client retries over TCP.
    return WireAnswer(response.to_wire(max_size=limit, prefer_truncation=True), outcome)


def _bare_reply(qid: int, query_flags: int, rcode: int) -> bytes:
    # A header-only reply for a message dnspython cannot parse: same id, opcode and RD.
    keep = query_flags & (0x7800 | dns.flags.RD)
    return _HEADER.pack(qid, dns.flags.QR | keep | (rcode & 0xF), 0, 0, 0, 0)


def resolv_conf(namespace: str, nameserver: str, domain: str = DEFAULT_DOMAIN) -> str:
    """A pod's /etc/resolv.conf, as the kubelet writes it for ClusterFirst pods."""
    return (
        f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
        f"nameserver {nameserver}\n"
        "options ndots:5\n"
    )
