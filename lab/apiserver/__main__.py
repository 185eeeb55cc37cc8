"""``python -m lab.apiserver --store FILE --state-dir DIR [--port 0] [--lab NAME]
[--fabric-netns NS --fabric-address IP:PORT] [--identities]
[--service-node-port-range LOW-HIGH]``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from lab.apiserver import identities
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.node_ports import (
    NODE_PORT_RANGE,
    configure_range,
    describe_range,
    parse_port_range,
)
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store


def bootstrap(store: Store) -> None:
    """Namespaces every cluster has (kubectl's default context namespace is "default")."""
    for name in ("default", "kube-system"):
        if store.get("Namespace", "", name) is None:
            created = store.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )
            store.update_status(
                "Namespace",
                "",
                name,
                {"phase": "Active"},
                expect_resource_version=created["metadata"]["resourceVersion"],
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apiserver", description=__doc__)
    parser.add_argument("--store", required=True, type=Path, help="the lab's store (SQLite file)")
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="CA, certificates, token, kubeconfig"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)"
    )
    parser.add_argument(
        "--lab", default="lab", help="lab name: the kubeconfig context is tulle-NAME"
    )
    parser.add_argument(
        "--fabric-netns", help="also listen inside this network namespace (the lab fabric)"
    )
    parser.add_argument(
        "--fabric-address", default="", help="IP:PORT to listen on inside --fabric-netns"
    )
    parser.add_argument(
        "--identities",
        action="store_true",
        help="seed the components' ServiceAccounts and ClusterRoles; write a kubeconfig each",
    )
    parser.add_argument(
        "--service-node-port-range",
        default=describe_range(NODE_PORT_RANGE),
        help="node ports for NodePort and LoadBalancer Services, as kube-apiserver's flag "
        "(LOW-HIGH, BASE+SIZE or PORT)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        configure_range(parse_port_range(args.service_node_port_range))
    except ValueError as err:
        parser.error(f"--service-node-port-range: {err}")
    fabric_host, _, fabric_port = args.fabric_address.rpartition(":")
    if args.fabric_netns and not (fabric_host and fabric_port.isdigit()):
        parser.error(f"--fabric-address must be IP:PORT, got {args.fabric_address!r}")

    creds = credentials(args.state_dir, [fabric_host] if args.fabric_netns else [])
    store = Store(args.store)
    bootstrap(store)
    tokens = (
        identities.seed(store, identities.load(identities.MANIFESTS)) if args.identities else {}
    )
    api = Api(store, frozenset({creds.token}))
    server = ApiServer(
        api, tls_context(creds.server_cert, creds.server_key), args.port, verbose=args.verbose
    )
    # Components use the fabric listener (reachable from every node namespace) when there is one.
    component_url = server.url
    if args.fabric_netns:
        component_url = server.listen_also(fabric_host, int(fabric_port), args.fabric_netns)
        print(f"serving {component_url} in netns {args.fabric_netns}", flush=True)
        write_kubeconfig(args.state_dir / "fabric.kubeconfig", args.lab, component_url, creds)
    for name, token in tokens.items():
        write_kubeconfig(
            args.state_dir / f"{name}.kubeconfig",
            args.lab,
            component_url,
            creds,
            token=token,
            user=name,
        )
    # Written last: its presence tells `tulle lab up` that every listener is open.
    kubeconfig = write_kubeconfig(args.state_dir / "kubeconfig", args.lab, server.url, creds)
    print(f"serving {server.url}", flush=True)
    print(f"KUBECONFIG={kubeconfig}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        api.stopping.set()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
