"""Request mirrors (HTTPRoute RequestMirror): a copy of the request, once its body is
complete and kept, sent to the mirror's backend; the answer is read and dropped. Bounded
by ``Limits.max_mirrors_in_flight``; a failure is never seen by the client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gatewayapi import BackendTarget, Request
from l7proxy.exchange import Exchange
from l7proxy.forward import upstream_request_head
from l7proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    from l7proxy.proxy import Proxy


def send_mirror(proxy: Proxy, target: BackendTarget, request: Request, ex: Exchange) -> None:
    if proxy.mirrors_in_flight >= proxy.limits.max_mirrors_in_flight:
        return
    proxy.mirrors_in_flight += 1
    asyncio.get_running_loop().create_task(_mirror(proxy, target, request, ex))


async def _mirror(proxy: Proxy, target: BackendTarget, request: Request, ex: Exchange) -> None:
    try:
        async with asyncio.timeout(30.0):
            await ex.body.wait()
            if not ex.body.kept:
                return
            address = proxy.pick(target, ex.client)
            via = proxy.connector.via(ex.client, address)
            tls = proxy.upstream_tls(target, ex.parent)  # never a TLS Service's in the clear
            conn = await proxy.pool.acquire(address, via, ex.client, tls)
            mirror = Exchange(
                ex.method,
                request.target,
                request.authority,
                ex.headers,
                ex.body,
                ex.parent,  # its X-Forwarded-For follows the original's rule
                ex.client,
                ex.local,
                started=ex.started,
                started_ns=ex.started_ns,
            )
            head, _ = upstream_request_head(mirror, request, proxy.config.trust_forwarded_for)
            future = conn.begin(
                head + b"".join(ex.body.chunks), complete=True, head_request=ex.method == "HEAD"
            )
            await future
            conn.attach(lambda _: None)
            assert conn.done is not None
            await conn.done
            proxy.pool.release(conn)
    except (UpstreamFailure, TimeoutError, OSError):
        pass
    finally:
        proxy.mirrors_in_flight -= 1
