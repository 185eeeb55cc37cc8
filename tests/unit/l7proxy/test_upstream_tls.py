"""The waypoint's ``Pool``/``Connector`` speaking TLS to a backend as a BackendTLSPolicy's
attachment (``gatewayapi.backendtls.UpstreamTLS``) asks, over loopback: the policy's CA and
hostname reach the backend; another CA, a plaintext backend or a policy without a usable
CA fail with drop reason UPSTREAM_TLS_FAILED and the reason; the pool never hands a
plaintext connection to a TLS request or the reverse."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gatewayapi.backendtls import UpstreamTLS
from l7proxy.h1up import Http1Upstream
from l7proxy.pool import Pool
from l7proxy.upstream import Connector, UpstreamFailure
from tests.unit.l7proxy.test_backendtls import CA, HOST, _serve_plaintext

REQUEST = b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n"


async def _serve_keepalive(context: ssl.SSLContext | None) -> asyncio.Server:
    """A backend answering every request on a connection with 200 "ok" (kept alive)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)


def _server_context(ca: CA, tmp: Path, *names: str) -> ssl.SSLContext:
    crt, key = ca.issue(tmp, *names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    return context


async def _get(pool: Pool, address: tuple[str, int], tls: UpstreamTLS | None) -> Http1Upstream:
    conn = await pool.acquire(address, tls=tls)
    head = await conn.begin(REQUEST, complete=True)
    assert head.status == 200
    assert conn.done is not None
    await conn.done
    return conn


def test_the_policys_ca_reaches_the_backend_and_pooled_connections_keep_their_tls(
    tmp_path: Path,
) -> None:
    ca = CA()
    tls = UpstreamTLS("shop/echo-tls", HOST, ca.pem)

    async def main() -> None:
        server = await _serve_keepalive(_server_context(ca, tmp_path, HOST))
        address = ("127.0.0.1", server.sockets[0].getsockname()[1])
        pool = Pool(Connector())
        try:
            first = await _get(pool, address, tls)
            assert first.tls == tls and first.transport is not None
            assert first.transport.get_extra_info("ssl_object") is not None
            pool.release(first)
            assert await _get(pool, address, tls) is first  # reused: same TLS settings
            pool.release(first)
            other = UpstreamTLS("shop/other", HOST, ca.pem)
            assert (await _get(pool, address, other)) is not first  # another policy's key
            plain = await pool.acquire(address)  # a plaintext request never gets it
            assert plain is not first and plain.tls is None
            plain.close()
        finally:
            pool.close()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def _failure(tmp_path: Path, tls: UpstreamTLS, *, plaintext: bool = False) -> UpstreamFailure:
    server_ca = CA()

    async def main() -> UpstreamFailure:
        server = await (
            _serve_plaintext() if plaintext
            else _serve_keepalive(_server_context(server_ca, tmp_path, HOST))
        )
        address = ("127.0.0.1", server.sockets[0].getsockname()[1])
        connector = Connector()
        try:
            with pytest.raises(UpstreamFailure) as info:
                await Pool(connector).acquire(address, tls=tls)
            assert connector.failed == 1
            return info.value
        finally:
            server.close()

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_a_certificate_from_another_ca_fails_with_the_drop_reason(tmp_path: Path) -> None:
    failure = _failure(tmp_path, UpstreamTLS("shop/echo-tls", HOST, CA().pem))
    assert failure.drop == "UPSTREAM_TLS_FAILED" and not failure.sent
    assert "certificate not trusted" in str(failure)


def test_a_wrong_hostname_fails(tmp_path: Path) -> None:
    ca = CA()

    async def main() -> UpstreamFailure:
        server = await _serve_keepalive(_server_context(ca, tmp_path, "other.example"))
        address = ("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            with pytest.raises(UpstreamFailure) as info:
                await Pool(Connector()).acquire(address, tls=UpstreamTLS("p", HOST, ca.pem))
            return info.value
        finally:
            server.close()

    failure = asyncio.run(asyncio.wait_for(main(), 20))
    assert failure.drop == "UPSTREAM_TLS_FAILED"
    assert "certificate not trusted" in str(failure) and "Hostname mismatch" in str(failure)


def test_a_plaintext_backend_fails(tmp_path: Path) -> None:
    failure = _failure(tmp_path, UpstreamTLS("p", HOST, CA().pem), plaintext=True)
    assert failure.drop == "UPSTREAM_TLS_FAILED"
    assert "TLS" in str(failure)


def test_a_policy_without_a_usable_ca_fails_closed(tmp_path: Path) -> None:
    refused = UpstreamTLS("shop/echo-tls", HOST, b"", refused="ConfigMap shop/echo-ca not found")
    failure = _failure(tmp_path, refused)
    assert failure.drop == "UPSTREAM_TLS_FAILED"
    assert "has no usable CA: ConfigMap shop/echo-ca not found" in str(failure)
