"""421 Misdirected Request on HTTPS listeners sharing a port (GatewayHTTPSListenerDetect-
MisdirectedRequests): the SNI chooses a listener (``l7proxy.tlscerts.TlsPort.select``), the
Host chooses one (``GatewayPortTable.misdirected``); different ones answer 421, the same one
routes. The table is upstream v1.6.1's (httproute-https-listener-detect-misdirected-
requests.go, the base Gateway same-namespace-with-https-listener), then the attacker's
variants of the Host: a port, upper case, a trailing dot, an IDN, none, no SNI."""

from __future__ import annotations

import pytest

from gatewayapi import GatewayParent, RouteTables
from gatewayapi.types import NoRoute
from l7proxy.tlscerts import ListenerCertificate, TlsPort
from tests.unit.gatewayapi.helpers import (
    INFRA,
    backend,
    gateway,
    gw_ref,
    listener,
    route,
    select,
    service,
    tls_secret,
)

PARENT = GatewayParent(INFRA, "gw", 443)
SAME = {"namespaces": {"from": "Same"}}
CERT = {"certificateRefs": [{"group": "", "kind": "Secret", "name": "cert"}]}
LISTENERS = (
    ("https", None),
    ("https-with-hostname", "second-example.org"),
    ("https-with-wildcard-hostname", "*.wildcard.org"),
    ("https-with-hostname-matching-wildcard", "fourth-example.wildcard.org"),
)
PATH = "/detect-misdirected-requests"


def _tables() -> RouteTables:
    from tests.unit.gatewayapi.helpers import tables

    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": PATH}}]}]
    routes = [
        route(f"test-{i}", INFRA, [{**rules[0], "backendRefs": [backend(name, 8080)]}],
              [gw_ref(sectionName=section)], hostnames)
        for i, (section, name, hostnames) in enumerate((
            ("https", "v1", ["example.org"]),
            ("https-with-hostname", "v2", []),
            ("https-with-wildcard-hostname", "v3", []),
            ("https-with-hostname-matching-wildcard", "v1", []),
        ))
    ]
    return tables(
        gateway(listeners=[listener(n, 443, "HTTPS", h, SAME, CERT) for n, h in LISTENERS]),
        tls_secret("cert"), *(service(v, INFRA) for v in ("v1", "v2", "v3")), *routes,
    )


def _port() -> TlsPort:
    return TlsPort(PARENT, [ListenerCertificate(n, h, None) for n, h in LISTENERS])


def answer(t: RouteTables, server_name: str | None, host: str) -> str:
    """What the waypoint does: "421", "404", or the backend Service routed to."""
    chosen = _port().select(server_name)
    assert chosen is not None
    if t.gateways[PARENT].misdirected(host, chosen.listener):
        return "421"
    found = select(t, PATH, host=host, parent=PARENT)
    if isinstance(found, NoRoute):
        return "404"
    [picked] = {b.target.name for b in found.rule.backends if b.target is not None}
    return picked


@pytest.fixture(scope="module")
def t() -> RouteTables:
    return _tables()


UPSTREAM = [
    ("example.org", "example.org", "v1"),
    ("example.org", "second-example.org", "421"),
    ("example.org", "unknown-example.org", "404"),
    ("second-example.org", "second-example.org", "v2"),
    ("second-example.org", "example.org", "421"),
    ("second-example.org", "unknown-example.org", "421"),
    ("third-example.wildcard.org", "third-example.wildcard.org", "v3"),
    ("third-example.wildcard.org", "fith-example.wildcard.org", "v3"),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", "421"),
    ("third-example.wildcard.org", "second-example.org", "421"),
    ("third-example.wildcard.org", "unknown-example.org", "421"),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", "v1"),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", "421"),
    ("unknown-example.org", "example.org", "v1"),
    ("unknown-example.org", "unknown-example.org", "404"),
]


@pytest.mark.parametrize(("server_name", "host", "want"), UPSTREAM)
def test_upstream_table(t: RouteTables, server_name: str, host: str, want: str) -> None:
    assert answer(t, server_name, host) == want


@pytest.mark.parametrize(
    ("server_name", "host", "want"),
    [
        # The Host's port, case and trailing dot do not move it to another listener...
        ("second-example.org", "second-example.org:443", "v2"),
        ("second-example.org", "SECOND-Example.ORG", "v2"),
        ("second-example.org", "second-example.org.", "v2"),
        ("SECOND-EXAMPLE.ORG.", "second-example.org", "v2"),  # nor the SNI's
        # ...and cannot hide a request for another listener behind the SNI's.
        ("example.org", "second-example.org:8443", "421"),
        ("example.org", "Second-Example.Org.", "421"),
        ("third-example.wildcard.org", "FOURTH-example.wildcard.org:443", "421"),
        # A Unicode (IDN U-label) Host names no listener (they are A-labels): the
        # listener without hostname's, so 421 from a named listener's connection.
        ("second-example.org", "bücher.example", "421"),
        ("example.org", "bücher.example", "404"),
        # An absent Host (HTTP/1.0) is the listener without hostname's, as for routing.
        ("second-example.org", "", "421"),
        ("example.org", "", "404"),
        # No SNI: the handshake fell to the listener without hostname.
        (None, "second-example.org", "421"),
        (None, "example.org", "v1"),
    ],
)
def test_the_host_cannot_be_disguised(
    t: RouteTables, server_name: str | None, host: str, want: str
) -> None:
    assert answer(t, server_name, host) == want


def test_without_a_listener_for_the_host_every_request_is_misdirected() -> None:
    """No listener without hostname: a Host no listener has is 421 whatever the SNI."""
    from tests.unit.gatewayapi.helpers import tables

    t = tables(
        gateway(listeners=[listener("a", 443, "HTTPS", "a.example", SAME, CERT),
                           listener("b", 443, "HTTPS", "*.b.example", SAME, CERT)]),
        tls_secret("cert"),
    )
    table = t.gateways[PARENT]
    assert not table.misdirected("a.example", "a")
    assert not table.misdirected("x.b.example", "b")
    assert table.misdirected("x.b.example", "a")
    assert table.misdirected("other.example", "a")
    assert table.misdirected("a.example", None)  # a connection no listener chose
