"""`tulle convert --verify`: serve the Ingresses and their conversion side by side on
loopback and replay a request corpus against both (the I/O shell around
``gatewayapi.ingress.corpus`` and ``gatewayapi.ingress.compare``).

Two real waypoints (``python -m l7proxy --config``), each from its own file: one serves
the Ingresses through Tulle's Ingress engine (``gatewayapi/ingress/serve.py``, the
Kubernetes Ingress semantics, independent of the converter), the other the converted
Gateway and HTTPRoutes. Behind both, one echo server (``python -m lab.echo.server``) with
a port per Service port: the port it was reached on says which backend took a request,
and its answer which path it saw. Everything listens on 127.0.0.1 (not in a lab: a lab's
waypoints serve one cluster's objects, and this needs two readings of the same ones). Bounded: at
most ``MAX_PROBES`` requests, 5 s each, ``budget`` seconds in all; every process started
here is stopped by its PID.

HTTPS is replayed with SNI: both sides get the same throwaway certificate per Secret the
Ingresses name (the input's keys are never read), and the client does not verify it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
from gatewayapi.ingress.sides import (
    VerifyError,
    gateway_of,
    gateway_side,
    ingress_side,
    namespaces,
    services_and_targets,
    tls_secrets,
)

EXIT_DIFFERENT = 3
"""Exit status when a response differs (the same as `tulle convert`'s "not exact")."""
REQUEST_TIMEOUT = 5.0
MAX_BACKENDS = 256
"""Service ports served by the one echo process (a bound on what untrusted input opens)."""
START_TIMEOUT = 60.0
"""How long a started process may take to listen (a loaded machine imports slowly)."""
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


class Processes:
    """Processes started here, stopped by PID (SIGTERM, then SIGKILL after 5 s)."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(self, args: list[str], env: Mapping[str, str], what: str, ports: list[int]) -> None:
        """Start ``args`` under this interpreter and wait until every port listens. Its
        stderr goes to an unlinked file (a pipe nobody reads would block a chatty child)."""
        full = {**os.environ, **env}
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(  # our own interpreter and modules
                [sys.executable, *args], env=full, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log,
            )
            self.running.append((proc, what))
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    log.seek(0)
                    err = log.read()[-800:].decode(errors="replace").strip()
                    raise VerifyError(f"{what} exited with {proc.returncode}: {err}")
                if all(_listening(port) for port in ports):
                    return
                time.sleep(0.1)
        raise VerifyError(f"{what} did not listen on 127.0.0.1:{ports} in {START_TIMEOUT:.0f} s")

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
        self.running.clear()


def secret_docs(documents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A throwaway self-signed certificate per TLS Secret the Ingresses name, for its hosts."""
    out = []
    for (ns, name), hosts in sorted(tls_secrets(documents).items()):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tulle convert --verify")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(h) for h in hosts or ["verify.invalid"]]), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        pem_crt = cert.public_bytes(serialization.Encoding.PEM)
        out.append({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": base64.b64encode(pem_crt).decode(),
                     "tls.key": base64.b64encode(pem_key).decode()},
        })  # fmt: skip
    return out


Ports = dict[int, int]
"""Served port (80, 443) -> the loopback port one side listens on for it."""


@contextlib.contextmanager
def serve_both(
    documents: Sequence[Mapping[str, Any]], conversion: Conversion
) -> Iterator[tuple[Ports, Ports, dict[str, str]]]:
    """Start the echo backends and both waypoints; yields the Ingress side's ports, the
    Gateway side's, and the echo ports' names (``namespace/service:port``)."""
    gateway = gateway_of(conversion)
    gw_ns, gw_name = gateway["metadata"]["namespace"], gateway["metadata"]["name"]
    services, targets = services_and_targets(documents, conversion)
    shared = [*services, *secret_docs(documents)]
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="tulle-verify-") as tmp:
            # One echo server for every backend, on a port each: the port it was reached
            # on ("httpPort" in its answer) names the Service port that answered.
            if len(targets) > MAX_BACKENDS:
                raise VerifyError(f"{len(targets)} Service ports, at most {MAX_BACKENDS}")
            local = {target: _free_port() for target in targets}
            backends = {str(p): f"{ns}/{svc}:{port}" for (ns, svc, port), p in local.items()}
            endpoints = {name: [f"127.0.0.1:{p}"] for p, name in backends.items()}
            if local:
                procs.start(
                    ["-m", "lab.echo.server", "--address", "127.0.0.1",
                     "--port", ",".join(map(str, local.values()))],
                    {}, "the echo backends", list(local.values()),
                )
            sides = (
                ("ingress", ingress_side(documents, gw_name),
                 {"kind": "IngressClass", "name": gw_name}),
                ("gateway", gateway_side(conversion, gateway),
                 {"kind": "Gateway", "namespace": gw_ns, "name": gw_name}),
            )
            served: list[Ports] = []
            for side, docs, parent in sides:
                ports = {80: _free_port(), 443: _free_port()}
                config = {
                    "apiVersion": "tulle.io/v1alpha1", "kind": "WaypointConfig",
                    "listeners": [
                        {"address": f"127.0.0.1:{local}", "parent": {**parent, "port": port}}
                        for port, local in ports.items()
                    ],
                    "endpoints": endpoints,
                }
                objects = [*docs, *shared]
                path = Path(tmp) / f"{side}.yaml"
                path.write_text(yaml.safe_dump_all([*namespaces(objects), *objects, config]))
                procs.start(["-m", "l7proxy", "--config", str(path)], {},
                            f"the {side} waypoint", [ports[80]])
                served.append(ports)
            yield served[0], served[1], backends
    finally:
        procs.stop()


def _connect(ports: Ports, probe: Probe, address: str) -> http.client.HTTPConnection:
    """A connection to the side's port for the probe's scheme; over TLS with the probe's
    host as SNI (the certificates are throwaway ones: not verified)."""
    conn = http.client.HTTPConnection(address, ports[80], timeout=REQUEST_TIMEOUT)
    if probe.scheme == "https":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((address, ports[443]), REQUEST_TIMEOUT)
        try:
            conn.sock = context.wrap_socket(raw, server_hostname=probe.host)
        except OSError:
            raw.close()
            raise
    return conn


def request(
    ports: Ports,
    probe: Probe,
    backends: Mapping[str, str],
    address: str = "127.0.0.1",
    backend_of: Callable[[Mapping[str, Any]], str] | None = None,
) -> Observation:
    """Send ``probe`` to one side at ``address`` and reduce the answer: the backend is
    ``backend_of(the echo's answer)``, or by default ``backends[the echo's port]``."""
    try:
        conn = _connect(ports, probe, address)
    except OSError as err:
        return Observation(error=_why(err))
    try:
        conn.putrequest(probe.method, probe.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", probe.host)
        for name, value in probe.headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read(1 << 20)
        headers = resp.getheaders()
    except (OSError, ValueError, http.client.HTTPException) as err:  # ValueError: a bad header
        return Observation(error=_why(err))
    finally:
        conn.close()
    backend = seen = ""
    if resp.status == 200 and probe.method != "HEAD":
        with contextlib.suppress(ValueError, AttributeError):
            echo = json.loads(body)
            port = str(echo.get("httpPort", ""))
            backend = (backend_of(echo) if backend_of is not None
                       else backends.get(port, f"unknown echo port {port}"))
            seen = str(echo.get("path", ""))
    return Observation(
        status=resp.status,
        backend=backend,
        backend_path=seen,
        location=resp.getheader("Location") or "",
        headers=controlled_headers(headers),
    )


def _why(err: Exception) -> str:
    """A failure as compared: its kind and the TLS alert, not text that varies per run."""
    reason = getattr(err, "reason", None)
    return f"{type(err).__name__}: {reason}" if isinstance(reason, str) else type(err).__name__


def verify(
    documents: Sequence[Mapping[str, Any]],
    conversion: Conversion,
    probes: Sequence[Probe],
    budget: float = 300.0,
) -> list[Outcome]:
    """Replay ``probes`` against both sides; each probe's verdict, in order."""
    outcomes: list[Outcome] = []
    try:
        with serve_both(documents, conversion) as (ingress_ports, gateway_ports, names):
            deadline = time.monotonic() + budget
            for probe in probes:
                if time.monotonic() > deadline:
                    outcomes.append(unchecked_outcome(probe, f"the {budget:.0f} s budget ran out"))
                else:
                    outcomes.append(compare(probe, request(ingress_ports, probe, names),
                                            request(gateway_ports, probe, names)))
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
    replay: Callable[[Sequence[Mapping[str, Any]], Conversion, Sequence[Probe]],
                     list[Outcome]] | None = None,
) -> int:
    """``tulle convert --verify``: print the differing responses and a summary; the exit
    status (0 none differs, 3 one does). ``replay`` serves both sides and replays the
    probes (default: :func:`verify`, on loopback; ``convert_verify_lab``: in a lab)."""
    try:
        ingresses = ingresses_of(documents)
        user = load_requests(requests_file) if requests_file else []
        probes = generate(ingresses) + [mark(p, ingresses) for p in user]
        if len(probes) > MAX_PROBES:
            raise VerifyError(f"{len(probes)} requests, at most {MAX_PROBES}")
        click.echo(f"verify: replaying {len(probes)} requests against both sides", err=True)
        outcomes = (replay or verify)(documents, conversion, probes)
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
                for why in o.probe.annotations or (o.reason,):
                    reasons[why] = reasons.get(why, 0) + 1
        for why, n in sorted(reasons.items()):
            click.echo(f"UNCHECKED {n} request(s) depend on {why}" if why.startswith(
                "nginx.") else f"UNCHECKED {n} request(s): {why}")
        if reasons:
            click.echo("  (Tulle's Ingress engine implements no ingress-nginx annotation: "
                       "what depends on one is not compared)")
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
        "ingress": {**outcome.ingress.fields(), "error": outcome.ingress.error},
        "gateway": {**outcome.gateway.fields(), "error": outcome.gateway.error},
        "differences": [
            {"field": f, "ingress": a, "gateway": b} for f, a, b in outcome.differences
        ],
    }  # fmt: skip
