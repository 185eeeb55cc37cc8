"""One client library's run, in its own process (so its peak RSS is its own): list the
Services and EndpointSlices, then watch Services from a given resourceVersion until N events.

Prints one JSON line. ``python -m bench.control.client_runs CLIENT KUBECONFIG SINCE COUNT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

Result = dict[str, Any]


def _status_mb(field: str) -> float:
    # Not getrusage's ru_maxrss: Linux keeps the parent's high-water mark across fork+exec.
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _run_kubernetes(kubeconfig: str, since: str, count: int) -> Result:
    from kubernetes import client, config, watch

    config.load_kube_config(kubeconfig)
    imported = _rss_mb()
    core, discovery = client.CoreV1Api(), client.DiscoveryV1Api()
    t0 = time.perf_counter()
    services = core.list_service_for_all_namespaces().items
    _touch([(s.spec.cluster_ip, s.spec.ports[0].port) for s in services])
    t1 = time.perf_counter()
    slices = discovery.list_endpoint_slice_for_all_namespaces().items
    _touch([a for sl in slices for e in sl.endpoints for a in e.addresses])
    t2 = time.perf_counter()
    seen = 0
    w = watch.Watch()
    for _event in w.stream(
        core.list_service_for_all_namespaces, resource_version=since, timeout_seconds=300
    ):
        seen += 1
        if seen == count:
            w.stop()
            break
    t3 = time.perf_counter()
    return _result(imported, services, slices, t0, t1, t2, t3, seen)


def _run_kubernetes_asyncio(kubeconfig: str, since: str, count: int) -> Result:
    from kubernetes_asyncio import client, config, watch

    async def main() -> Result:
        await config.load_kube_config(kubeconfig)
        imported = _rss_mb()
        async with client.ApiClient() as api:
            core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
            t0 = time.perf_counter()
            services = (await core.list_service_for_all_namespaces()).items
            _touch([(s.spec.cluster_ip, s.spec.ports[0].port) for s in services])
            t1 = time.perf_counter()
            slices = (await discovery.list_endpoint_slice_for_all_namespaces()).items
            _touch([a for sl in slices for e in sl.endpoints for a in e.addresses])
            t2 = time.perf_counter()
            seen = 0
            w = watch.Watch()
            async for _event in w.stream(
                core.list_service_for_all_namespaces, resource_version=since, timeout_seconds=300
            ):
                seen += 1
                if seen == count:
                    w.stop()
                    break
            t3 = time.perf_counter()
        return _result(imported, services, slices, t0, t1, t2, t3, seen)

    return asyncio.run(main())


def _run_lightkube(kubeconfig: str, since: str, count: int) -> Result:
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import Service
    from lightkube.resources.discovery_v1 import EndpointSlice

    c = Client(config=KubeConfig.from_file(kubeconfig))
    imported = _rss_mb()
    t0 = time.perf_counter()
    services = list(c.list(Service, namespace="*"))
    _touch([(s.spec.clusterIP, s.spec.ports[0].port) for s in services])  # type: ignore[union-attr,index]
    t1 = time.perf_counter()
    slices = list(c.list(EndpointSlice, namespace="*"))
    _touch([a for sl in slices for e in sl.endpoints for a in e.addresses])
    t2 = time.perf_counter()
    seen = 0
    for _event in c.watch(Service, namespace="*", resource_version=since):
        seen += 1
        if seen == count:
            break
    t3 = time.perf_counter()
    return _result(imported, services, slices, t0, t1, t2, t3, seen)


def _run_kr8s(kubeconfig: str, since: str, count: int) -> Result:
    import kr8s.asyncio

    async def main() -> Result:
        api = await kr8s.asyncio.api(kubeconfig=kubeconfig)
        imported = _rss_mb()
        t0 = time.perf_counter()
        services = [s async for s in api.async_get("services", namespace=kr8s.ALL)]
        _touch([(s.spec.clusterIP, s.spec.ports[0].port) for s in services])
        t1 = time.perf_counter()
        slices = [s async for s in api.async_get("endpointslices", namespace=kr8s.ALL)]
        _touch([a for sl in slices for e in sl.raw["endpoints"] for a in e["addresses"]])
        t2 = time.perf_counter()
        seen = 0
        async for _event in api.async_watch("services", namespace=kr8s.ALL, since=since):
            seen += 1
            if seen == count:
                break
        t3 = time.perf_counter()
        return _result(imported, services, slices, t0, t1, t2, t3, seen)

    return asyncio.run(main())


def _touch(values: list[Any]) -> None:
    """Read the fields a datapath plans from (lazily decoding libraries pay for it here)."""
    if not values or any(v is None for v in values[:1]):
        raise RuntimeError("decoded objects lack the fields the bench reads")


def _result(
    imported: float,
    services: list[Any],
    slices: list[Any],
    t0: float,
    t1: float,
    t2: float,
    t3: float,
    seen: int,
) -> Result:
    return {
        "services": len(services),
        "slices": len(slices),
        "list_services_s": round(t1 - t0, 3),
        "list_slices_s": round(t2 - t1, 3),
        "watch_events": seen,
        "watch_s": round(t3 - t2, 3),
        "watch_events_per_s": round(seen / (t3 - t2)),
        "rss_after_import_mb": round(imported, 1),
        "rss_peak_mb": round(_peak_mb(), 1),
    }


def _run_raw(kubeconfig: str, since: str, count: int) -> Result:
    """No library: http.client and json, dicts kept as parsed. The floor the server sets."""
    import http.client
    import ssl

    import yaml

    cfg = yaml.safe_load(open(kubeconfig))
    server = cfg["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])
    host, port = server.removeprefix("https://").rsplit(":", 1)
    headers = {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"}
    imported = _rss_mb()

    def get(path: str) -> Any:
        conn = http.client.HTTPSConnection(host, int(port), context=ctx)
        conn.request("GET", path, headers=headers)
        return json.loads(conn.getresponse().read())

    t0 = time.perf_counter()
    services = get("/api/v1/services")["items"]
    _touch([(s["spec"]["clusterIP"], s["spec"]["ports"][0]["port"]) for s in services])
    t1 = time.perf_counter()
    slices = get("/apis/discovery.k8s.io/v1/endpointslices")["items"]
    _touch([a for sl in slices for e in sl["endpoints"] for a in e["addresses"]])
    t2 = time.perf_counter()
    conn = http.client.HTTPSConnection(host, int(port), context=ctx)
    conn.request("GET", f"/api/v1/services?watch=1&resourceVersion={since}", headers=headers)
    stream = conn.getresponse()
    seen = 0
    while seen < count:
        line = stream.readline()
        if not line:
            break
        json.loads(line)
        seen += 1
    conn.close()
    t3 = time.perf_counter()
    return _result(imported, services, slices, t0, t1, t2, t3, seen)


RUNS: dict[str, Callable[[str, str, int], Result]] = {
    "raw (http.client + json)": _run_raw,
    "kubernetes": _run_kubernetes,
    "kubernetes-asyncio": _run_kubernetes_asyncio,
    "lightkube": _run_lightkube,
    "kr8s": _run_kr8s,
}


if __name__ == "__main__":
    name, kubeconfig, since, count = sys.argv[1:5]
    print(json.dumps(RUNS[name](kubeconfig, since, int(count))), flush=True)
