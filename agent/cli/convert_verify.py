"""`tulle convert --verify`: serve the Ingresses and their conversion side by side on
loopback and replay a request corpus against both (the I/O shell around
``gatewayapi.ingress.corpus`` and ``gatewayapi.ingress.compare``).

Two real waypoints (``python -m l7proxy --config``), each from its own file: one serves
the Ingresses through Tulle's Ingress engine (``gatewayapi/ingress/serve.py``, the
Kubernetes Ingress semantics, independent of the converter), the other the converted
Gateway and HTTPRoutes. Behind both, one echo server (``python -m lab.echo.server``) per
Service port, named ``namespace/service:port`` so each answer says which backend took it
and which path it saw. Everything listens on 127.0.0.1 (not in a lab: a lab's waypoints
serve one cluster's objects, and this needs two readings of the same ones). Bounded: at
most ``MAX_PROBES`` requests, 5 s each, ``budget`` seconds in all; every process started
here is stopped by its PID.

HTTPS probes are not replayed yet (they are reported as unchecked).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from gatewayapi.ingress import Conversion, IngressError
from gatewayapi.ingress.compare import (
    Observation,
    Outcome,
    Verdict,
    compare,
    controlled_headers,
    summary,
    table,
)
from gatewayapi.ingress.compare import unchecked as unchecked_outcome
from gatewayapi.ingress.corpus import (
    MAX_PROBES,
    Probe,
    generate,
    ingresses_of,
    mark,
    read_requests,
)
from gatewayapi.types import CONTROLLER_NAME, INGRESS_CONTROLLER_NAME

EXIT_DIFFERENT = 3
"""Exit status when a response differs (the same as `tulle convert`'s "not exact")."""
REQUEST_TIMEOUT = 5.0
START_TIMEOUT = 60.0
"""How long a started process may take to listen (a loaded machine imports slowly)."""
ROOT = Path(__file__).resolve().parents[2]
Target = tuple[str, str, int]  # namespace, service, port


class VerifyError(RuntimeError):
    """The side-by-side setup could not be built or started (the message says what)."""


def services_and_targets(
    documents: Sequence[Mapping[str, Any]], conversion: Conversion
) -> tuple[list[dict[str, Any]], list[Target]]:
    """The Services both sides need (the input's, plus one per backend the input does not
    define, with the ports the backends name) and every Service port to run an echo for."""
    given = {
        (d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
        for d in documents
        if d.get("kind") == "Service"
    }
    wanted: dict[tuple[str, str], set[int]] = {}
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ns = doc["metadata"].get("namespace", "default")
        spec = doc.get("spec") or {}
        backends = [spec.get("defaultBackend")] + [
            p.get("backend")
            for r in spec.get("rules") or []
            for p in (r.get("http") or {}).get("paths") or []
        ]
        for backend in backends:
            svc = (backend or {}).get("service")
            if not svc:
                continue
            number = (svc.get("port") or {}).get("number")
            ports = wanted.setdefault((ns, svc["name"]), set())
            if isinstance(number, int):
                ports.add(number)
    for obj in conversion.objects:
        if obj["kind"] != "HTTPRoute":
            continue
        ns = obj["metadata"]["namespace"]
        for rule in obj["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                wanted.setdefault((ref.get("namespace", ns), ref["name"]), set()).add(ref["port"])
    services: list[dict[str, Any]] = []
    targets: set[Target] = set()
    for (ns, name), ports in sorted(wanted.items()):
        doc = given.get((ns, name))
        if doc is None:
            doc = {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"port": p} for p in sorted(ports)]},
            }
        services.append(doc)
        for port in doc.get("spec", {}).get("ports", []):
            targets.add((ns, name, int(port["port"])))
    services += [d for k, d in sorted(given.items()) if k not in wanted]
    return services, sorted(targets)


def gateway_of(conversion: Conversion) -> dict[str, Any]:
    gateways = [o for o in conversion.objects if o["kind"] == "Gateway"]
    if len(gateways) != 1:
        names = ", ".join(g["metadata"]["name"] for g in gateways) or "none"
        raise VerifyError(
            f"--verify checks one IngressClass at a time; the conversion has Gateways: {names}"
        )
    return gateways[0]


def ingress_side(documents: Sequence[Mapping[str, Any]], class_name: str) -> list[dict[str, Any]]:
    """The input's Ingresses, all in ``class_name`` (the one class being verified), and that
    class served by Tulle's Ingress controller."""
    out: list[dict[str, Any]] = [{
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": class_name},
        "spec": {"controller": INGRESS_CONTROLLER_NAME},
    }]  # fmt: skip
    for doc in documents:
        if doc.get("kind") != "Ingress":
            continue
        ing = copy.deepcopy(dict(doc))
        ing["metadata"].get("annotations", {}).pop("kubernetes.io/ingress.class", None)
        ing.setdefault("spec", {})["ingressClassName"] = class_name
        out.append(ing)
    return out


def namespaces(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    names = sorted({o["metadata"].get("namespace", "default") for o in objects
                    if o.get("kind") not in ("IngressClass", "GatewayClass", "Namespace")})
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
            for n in names]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Processes started here, stopped by PID (SIGTERM, then SIGKILL after 5 s)."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(self, args: list[str], env: Mapping[str, str], what: str, port: int) -> None:
        full = {**os.environ, **env}
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            [sys.executable, *args], env=full, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.running.append((proc, what))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise VerifyError(f"{what} exited with {proc.returncode}: {err.strip()[-800:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.1)
        raise VerifyError(f"{what} did not listen on 127.0.0.1:{port} in {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        for proc, _ in self.running:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.running:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
        self.running.clear()


@contextlib.contextmanager
def serve_both(
    documents: Sequence[Mapping[str, Any]], conversion: Conversion
) -> Iterator[tuple[int, int]]:
    """Start the echo backends and both waypoints; yields (Ingress port, Gateway port)."""
    gateway = gateway_of(conversion)
    gw_ns, gw_name = gateway["metadata"]["namespace"], gateway["metadata"]["name"]
    services, targets = services_and_targets(documents, conversion)
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="tulle-verify-") as tmp:
            endpoints = {}
            for ns, svc, port in targets:
                echo_port = _free_port()
                procs.start(
                    ["-m", "lab.echo.server", "--address", "127.0.0.1", "--port", str(echo_port)],
                    {"POD_NAME": f"{ns}/{svc}:{port}", "NAMESPACE": ns, "SERVICE_NAME": svc},
                    f"echo backend for {ns}/{svc}:{port}", echo_port,
                )
                endpoints[f"{ns}/{svc}:{port}"] = [f"127.0.0.1:{echo_port}"]
            ports = []
            ingress_docs = ingress_side(documents, gw_name)
            gateway_docs: list[dict[str, Any]] = [{
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": gateway["spec"]["gatewayClassName"]},
                "spec": {"controllerName": CONTROLLER_NAME},
            }, *copy.deepcopy(conversion.objects)]  # fmt: skip
            sides = (
                ("ingress", ingress_docs, {"kind": "IngressClass", "name": gw_name, "port": 80}),
                ("gateway", gateway_docs,
                 {"kind": "Gateway", "namespace": gw_ns, "name": gw_name, "port": 80}),
            )
            for side, docs, parent in sides:
                port = _free_port()
                config = {
                    "apiVersion": "tulle.io/v1alpha1", "kind": "WaypointConfig",
                    "listeners": [{"address": f"127.0.0.1:{port}", "parent": parent}],
                    "endpoints": endpoints,
                }
                objects = [*docs, *services]
                path = Path(tmp) / f"{side}.yaml"
                path.write_text(yaml.safe_dump_all([*namespaces(objects), *objects, config]))
                procs.start(["-m", "l7proxy", "--config", str(path)], {},
                            f"the {side} waypoint", port)
                ports.append(port)
            yield ports[0], ports[1]
    finally:
        procs.stop()


def request(port: int, probe: Probe) -> Observation:
    """Send ``probe`` to 127.0.0.1:``port`` over plain HTTP and reduce the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.putrequest(probe.method, probe.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", probe.host)
        for name, value in probe.headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read(1 << 20)
        headers = resp.getheaders()
    except (OSError, http.client.HTTPException) as err:
        return Observation(error=f"{type(err).__name__}: {err}")
    finally:
        conn.close()
    backend = seen = ""
    if resp.status == 200 and probe.method != "HEAD":
        with contextlib.suppress(ValueError, AttributeError):
            echo = json.loads(body)
            backend, seen = str(echo.get("pod", "")), str(echo.get("path", ""))
    return Observation(
        status=resp.status,
        backend=backend,
        backend_path=seen,
        location=resp.getheader("Location") or "",
        headers=controlled_headers(headers),
    )


def verify(
    documents: Sequence[Mapping[str, Any]],
    conversion: Conversion,
    probes: Sequence[Probe],
    budget: float = 300.0,
) -> list[Outcome]:
    """Replay ``probes`` against both sides; each probe's verdict, in order."""
    outcomes: list[Outcome] = []
    try:
        with serve_both(documents, conversion) as (ingress_port, gateway_port):
            deadline = time.monotonic() + budget
            for probe in probes:
                if probe.scheme != "http":
                    outcomes.append(unchecked_outcome(probe, "HTTPS is not replayed yet"))
                elif time.monotonic() > deadline:
                    outcomes.append(unchecked_outcome(probe, f"the {budget:.0f} s budget ran out"))
                else:
                    outcomes.append(compare(probe, request(ingress_port, probe),
                                            request(gateway_port, probe)))
    except (OSError, IngressError, KeyError, TypeError) as err:
        raise VerifyError(f"cannot serve both sides: {err}") from err
    return outcomes


def load_requests(path: str) -> list[Probe]:
    """User requests from a YAML or JSON file (``corpus.read_requests``)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise VerifyError(f"--requests {path}: {err}") from err
    try:
        return read_requests(data, path)
    except IngressError as err:
        raise VerifyError(str(err)) from err


def run_verify(
    documents: Sequence[Mapping[str, Any]],
    conversion: Conversion,
    requests_file: str | None,
    output: str,
) -> int:
    """``tulle convert --verify``: print the differing responses and a summary; the exit
    status (0 none differs, 3 one does)."""
    try:
        ingresses = ingresses_of(documents)
        user = load_requests(requests_file) if requests_file else []
        probes = generate(ingresses) + [mark(p, ingresses) for p in user]
        if len(probes) > MAX_PROBES:
            raise VerifyError(f"{len(probes)} requests, at most {MAX_PROBES}")
        click.echo(f"verify: replaying {len(probes)} requests against both sides", err=True)
        outcomes = verify(documents, conversion, probes)
    except VerifyError as err:
        raise click.ClickException(str(err)) from err
    counts = summary(outcomes)
    if output == "json":
        click.echo(json.dumps({
            "summary": {v.value: n for v, n in counts.items()},
            "results": [outcome_dict(o) for o in outcomes],
        }, indent=2))  # fmt: skip
    else:
        for line in table(outcomes):
            click.echo(line)
        reasons: dict[str, int] = {}
        for o in outcomes:
            if o.verdict is Verdict.UNCHECKED:
                reasons[o.reason] = reasons.get(o.reason, 0) + 1
        for reason, n in sorted(reasons.items()):
            click.echo(f"UNCHECKED {n} request(s): {reason}")
        click.echo(
            f"verify: {counts[Verdict.DIFFERENT]} different, {counts[Verdict.SAME]} same, "
            f"{counts[Verdict.UNCHECKED]} unchecked"
        )
    return EXIT_DIFFERENT if counts[Verdict.DIFFERENT] else 0


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    return {
        "request": {
            "method": outcome.probe.method, "scheme": outcome.probe.scheme,
            "host": outcome.probe.host, "path": outcome.probe.path,
            "headers": dict(outcome.probe.headers), "why": outcome.probe.why,
        },
        "verdict": outcome.verdict.value,
        "reason": outcome.reason,
        "ingress": outcome.ingress.fields(),
        "gateway": outcome.gateway.fields(),
        "differences": [
            {"field": f, "ingress": a, "gateway": b} for f, a, b in outcome.differences
        ],
    }  # fmt: skip
