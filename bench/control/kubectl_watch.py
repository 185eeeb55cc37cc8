"""From an API write's response to a watcher holding the event (issue 10): the part of
`kubectl apply` → maps between the API server's commit and a node agent's informer.

A bare lab API server in this process; one client watches ConfigMaps on a kept-alive HTTPS
stream while another creates them one at a time, at uneven intervals; per write, the time
from the POST's response to the watch event's arrival (negative: the event came first).

    python -m bench.control.kubectl_watch [--writes 40]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store

PATH = "/api/v1/namespaces/default/configmaps"


def measure(writes: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="tulle-bench-watch-") as tmp:
        root = Path(tmp)
        creds = credentials(root / "state")
        store = Store(root / "store.db")
        bootstrap(store)
        server = ApiServer(
            Api(store, frozenset({creds.token})), tls_context(creds.server_cert, creds.server_key)
        ).start()
        ctx = ssl.create_default_context(cafile=str(creds.ca_cert))
        headers = {"Authorization": f"Bearer {creds.token}", "Content-Type": "application/json"}
        watcher = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
        watcher.request("GET", PATH + "?watch=1", headers=headers)
        stream = watcher.getresponse()
        arrived: dict[str, float] = {}

        def read() -> None:
            try:
                while line := stream.readline():
                    name = json.loads(line)["object"]["metadata"]["name"]
                    arrived[name] = time.perf_counter()
            except (OSError, ValueError):
                return  # the stream closed under us at the end

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        writer = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
        delays = []
        try:
            for n in range(writes):
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{n}"}}
                writer.request("POST", PATH, body=json.dumps(body), headers=headers)
                writer.getresponse().read()
                answered = time.perf_counter()
                deadline = answered + 10
                while f"c{n}" not in arrived and time.perf_counter() < deadline:
                    time.sleep(0.0005)
                delays.append((arrived.get(f"c{n}", deadline) - answered) * 1000)
                time.sleep(0.013 * (n % 5))  # uneven, so writes land anywhere in a poll cycle
        finally:
            writer.close()
            server.stop()  # ends the watch stream; the reader sees its end
            reader.join(5)
            watcher.close()
            store.close()
    return delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=40)
    args = parser.parse_args(argv)
    delays = sorted(measure(args.writes))
    result = {
        "writes": len(delays),
        "p50_ms": round(statistics.median(delays), 1),
        "p90_ms": round(delays[int(0.9 * len(delays))], 1),
        "max_ms": round(delays[-1], 1),
    }
    print(json.dumps(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
