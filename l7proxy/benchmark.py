"""The benchmark route table: N HTTPRoute rules (prefix and header matches) on one
Gateway listener, all to one backend, as a waypoint config file.

    python -m l7proxy.benchmark --backend 127.0.0.1:18080 --rules 50 > /tmp/bench.yaml
    python -m l7proxy --config /tmp/bench.yaml --listen 127.0.0.1:15001
    wrk -t1 -c32 -d5s http://127.0.0.1:15001/svc25/item   # a rule in the middle
"""

from __future__ import annotations

import argparse
import sys

HEADER = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: tulle}}
spec: {{controllerName: tulle.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench, namespace: infra}}
spec:
  gatewayClassName: tulle
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: backend, namespace: default}}
spec: {{clusterIP: 10.96.0.100, ports: [{{port: 8080}}]}}
---
apiVersion: tulle.io/v1alpha1
kind: WaypointConfig
listeners:
- address: {listen}
  parent: {{kind: Gateway, namespace: infra, name: bench, port: 80}}
endpoints:
  default/backend:8080: [{backend}]
"""

ROUTE = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bench-{i}, namespace: default, creationTimestamp: "2024-01-01T00:00:{sec:02d}Z"}}
spec:
  parentRefs: [{{name: bench, namespace: infra}}]
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /svc{i}}}
      headers: [{{name: x-bench, value: v{i}}}]
    backendRefs: [{{name: backend, port: 8080}}]
  - matches:
    - path: {{type: PathPrefix, value: /svc{i}}}
    backendRefs: [{{name: backend, port: 8080}}]
"""


def bench_config(backend: str, *, rules: int = 50, listen: str = "127.0.0.1:15001") -> str:
    """``rules`` rules over ``rules // 2`` routes: each route has a header rule and a
    prefix rule."""
    text = HEADER.format(listen=listen, backend=backend)
    for i in range(max(1, rules // 2)):
        text += ROUTE.format(i=i, sec=i % 60)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="127.0.0.1:18080")
    parser.add_argument("--listen", default="127.0.0.1:15001")
    parser.add_argument("--rules", type=int, default=50)
    args = parser.parse_args(argv)
    sys.stdout.write(bench_config(args.backend, rules=args.rules, listen=args.listen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
