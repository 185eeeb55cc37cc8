"""The waypoint's upstream hop (l7proxy.via): which hop for which (client, backend) pair, which
identity a tunnel presents, the directory's modes as the kernel plans them, and the pool
keeping connections of different hops (identities) apart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from l7proxy.h1up import Http1Upstream
from l7proxy.hbone.directory import PodDirectory, build, modes_of
from l7proxy.pool import Pool
from l7proxy.upstream import Connector, P, UpstreamFailure
from l7proxy.via import AUTH_REQUIRED, DIRECT, Refused, Tunnel, Via, choose
from tests.unit.datapath.test_mtls_plan import ENROL, namespace, peer_auth, pod

TD = "cluster.local"
WEB, DB, PLAIN, LOOSE, OFF = "10.0.1.5", "10.0.2.5", "10.0.1.9", "10.0.2.6", "10.0.2.7"
WEB_ID, DB_ID = f"spiffe://{TD}/ns/shop/sa/web", f"spiffe://{TD}/ns/shop/sa/db"
PLAIN_ID = f"spiffe://{TD}/ns/plain/sa/default"
WP_B = ("10.0.2.254", 15008)


def directory(**modes: tuple[str, dict[int, str]]) -> PodDirectory:
    pods = {
        WEB: (WEB_ID, "a"),
        DB: (DB_ID, "b"),
        PLAIN: (PLAIN_ID, "a"),
        LOOSE: (f"spiffe://{TD}/ns/shop/sa/loose", "b"),
        OFF: (f"spiffe://{TD}/ns/shop/sa/off", "b"),
    }
    default = {
        WEB: ("STRICT", {}),
        DB: ("STRICT", {}),
        LOOSE: ("PERMISSIVE", {}),
        OFF: ("DISABLE", {}),
    }
    return PodDirectory("a", pods, {"a": ("10.0.1.254", 15008), "b": WP_B}, modes or default)


@pytest.mark.parametrize(
    ("client", "backend", "expected"),
    [
        # enrolled client: a tunnel presenting the *client's* identity, to the backend's node
        (WEB, (DB, 8080), Tunnel(WEB_ID, DB_ID, WP_B)),
        (WEB, (LOOSE, 8080), Tunnel(WEB_ID, f"spiffe://{TD}/ns/shop/sa/loose", WP_B)),
        (WEB, (OFF, 8080), DIRECT),  # DISABLE: plaintext only
        (WEB, (PLAIN, 8080), DIRECT),  # a backend outside the mesh
        # a client outside the mesh: never a tunnel (no identity to present)
        (PLAIN, (LOOSE, 8080), DIRECT),
        (PLAIN, (OFF, 8080), DIRECT),
        ("192.0.2.1", (LOOSE, 8080), DIRECT),  # not a pod at all (a Gateway's caller)
    ],
)
def test_the_hop_follows_the_kernels_rule(client: str, backend: tuple[str, int], expected: Via) -> None:
    assert choose(client, backend, directory()) == expected


@pytest.mark.parametrize("client", [PLAIN, "192.0.2.1"])
def test_a_client_outside_the_mesh_is_refused_by_a_strict_backend(client: str) -> None:
    hop = choose(client, (DB, 8080), directory())
    assert isinstance(hop, Refused)
    assert hop.drop == AUTH_REQUIRED == "AUTH_REQUIRED"
    assert DB in hop.detail and client in hop.detail


def test_an_enrolled_pod_without_a_known_waypoint_is_not_sent_plaintext() -> None:
    lost = PodDirectory("a", {WEB: (WEB_ID, "a"), DB: (DB_ID, "gone")}, {},
                        {WEB: ("STRICT", {}), DB: ("STRICT", {})})
    hop = choose(WEB, (DB, 8080), lost)
    assert hop == Refused("TUNNEL_UPSTREAM_FAILED", f"no waypoint known for the backend {DB}")


def test_port_overrides_decide_per_backend_port() -> None:
    found = directory(**{WEB: ("STRICT", {}), DB: ("STRICT", {9090: "DISABLE"})})
    assert choose(PLAIN, (DB, 9090), found) == DIRECT
    assert isinstance(choose(PLAIN, (DB, 8080), found), Refused)
    assert choose(WEB, (DB, 9090), found) == DIRECT


def test_identities_never_mix_in_a_tunnel_key() -> None:
    other = "10.0.1.6"
    found = PodDirectory(
        "a",
        {WEB: (WEB_ID, "a"), other: (f"spiffe://{TD}/ns/shop/sa/api", "a"), DB: (DB_ID, "b")},
        {"b": WP_B},
        {WEB: ("STRICT", {}), other: ("STRICT", {}), DB: ("STRICT", {})},
    )
    one, two = choose(WEB, (DB, 80), found), choose(other, (DB, 80), found)
    assert isinstance(one, Tunnel) and isinstance(two, Tunnel)
    assert one != two and hash(one) != hash(two)
    assert one.source_id == WEB_ID and two.source_id.endswith("/sa/api")


def test_the_directory_plans_modes_as_the_kernel_does() -> None:
    pods = [pod("shop", "web", WEB, {"app": "web"}), pod("shop", "db", DB, {"app": "db"}, "b"),
            pod("plain", "p", PLAIN)]
    namespaces = [namespace("shop", ENROL), namespace("plain")]
    policies = [peer_auth("shop", "strict", "STRICT"),
                peer_auth("shop", "db-metrics", selector={"app": "db"}, ports={9090: "PERMISSIVE"})]
    modes = modes_of(pods, namespaces, policies)  # type: ignore[arg-type]
    assert modes == {WEB: ("STRICT", {}), DB: ("STRICT", {9090: "PERMISSIVE"})}
    found = build("a", pods, [], TD, namespaces, policies)  # type: ignore[arg-type]
    assert found.mode_of(DB, 8080) == "STRICT"
    assert found.mode_of(DB, 9090) == "PERMISSIVE"
    assert found.mode_of(DB, 0) == "STRICT"
    assert found.mode_of(PLAIN, 0) is None  # not enrolled: the plaintext path
    assert found.identity_of(PLAIN) == PLAIN_ID  # ... though it has an identity


# --- the pool and the connector --------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class RecordingConnector(Connector):
    """Hands out connected protocols without sockets, and says which hop each came over."""

    def __init__(self) -> None:
        super().__init__()
        self.opened_over: list[tuple[tuple[str, int], Via, tuple[str, int]]] = []
        self.tunnels = self  # type: ignore[assignment]

    async def open(self, *args: Any) -> tuple[asyncio.BaseTransport, Any]:
        if len(args) == 2:  # plaintext: (address, factory)
            address, factory = args
            via, client = DIRECT, ("", 0)
        else:  # the tunnel opener's: (backend, via, client, factory)
            address, via, client, factory = args
        self.opened_over.append((address, via, client))
        protocol = factory()
        transport = FakeTransport()
        protocol.connection_made(transport)
        return transport, protocol


def finished(conn: Http1Upstream) -> None:
    """As if a whole request went and its whole response came back."""
    loop = asyncio.get_running_loop()
    conn.done = loop.create_future()
    conn.done.set_result(None)


def test_the_pool_keys_connections_by_endpoint_and_hop() -> None:
    async def main() -> None:
        connector = RecordingConnector()
        pool = Pool(connector)
        backend = (DB, 8080)
        web = Tunnel(WEB_ID, DB_ID, WP_B)
        api = Tunnel("spiffe://cluster.local/ns/shop/sa/api", DB_ID, WP_B)
        first = await pool.acquire(backend, web, (WEB, 40000))
        assert first.via == web
        finished(first)
        pool.release(first)
        # Another identity to the same backend never gets web's idle connection ...
        other = await pool.acquire(backend, api, ("10.0.1.6", 40001))
        assert other is not first
        # ... nor does a plaintext hop; web's own next request does.
        plain = await pool.acquire(backend)
        assert plain is not first and plain.via == DIRECT
        assert await pool.acquire(backend, web, (WEB, 40002)) is first
        assert [(v, c) for _, v, c in connector.opened_over] == [
            (web, (WEB, 40000)), (api, ("10.0.1.6", 40001)), (DIRECT, ("", 0))
        ]

    asyncio.run(main())


def test_the_connector_refuses_with_the_drop_reason() -> None:
    connector = Connector()
    assert connector.via((PLAIN, 5), (DB, 8080)) == DIRECT  # no mesh: always plaintext
    connector.mesh = directory()
    with pytest.raises(UpstreamFailure) as refused:
        connector.via((PLAIN, 5), (DB, 8080))
    assert refused.value.drop == "AUTH_REQUIRED" and not refused.value.sent
    assert connector.via((WEB, 5), (DB, 8080)) == Tunnel(WEB_ID, DB_ID, WP_B)


def test_a_tunnel_hop_without_hbone_fails_instead_of_going_plaintext() -> None:
    async def main() -> None:
        connector = Connector()
        factory: Callable[[], P] = lambda: Http1Upstream((DB, 8080))  # type: ignore[assignment,return-value]  # noqa: E731
        with pytest.raises(UpstreamFailure) as failed:
            await connector.connect((DB, 8080), factory, Tunnel(WEB_ID, DB_ID, WP_B), (WEB, 1))
        assert failed.value.drop == "TUNNEL_UPSTREAM_FAILED"
        assert connector.opened == 0

    asyncio.run(main())
