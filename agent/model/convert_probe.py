"""Reader for container probes with Kubernetes' defaults and validation
(pkg/apis/core/v1/defaults.go SetDefaults_Probe; validation.validateProbe): exactly one
handler, non-negative timings, a zero or unset timing taking the default; liveness and
startup probes need ``successThreshold`` 1."""

from __future__ import annotations

import re

from agent.model.core_container import (
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    HTTPHeader,
    Probe,
    TCPSocketAction,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import iana_svc_name, quote

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
# apimachinery's IsHTTPHeaderName
_HEADER_NAME = re.compile(r"^[-A-Za-z0-9]+$")


def _port_number(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"must be between 1 and 65535, got {value}"


def read_probes(r: Reader) -> dict[str, Probe | None]:
    """A container's probes by field name."""
    probes = {key: r.obj(key, read_probe) for key in PROBES}
    for key, probe in probes.items():
        if probe is not None and key != "readinessProbe" and probe.success_threshold != 1:
            r.fail(f"{key}.successThreshold", "must be 1")
    return probes


def read_probe(r: Reader) -> Probe:
    r.exactly_one(_HANDLERS, "must specify a handler type (one of exec, httpGet, tcpSocket, "
                  "grpc)", "may not specify more than 1 handler type")
    return Probe(
        exec=r.obj("exec", _read_exec),
        http_get=r.obj("httpGet", _read_http_get),
        tcp_socket=r.obj("tcpSocket", _read_tcp_socket),
        grpc=r.obj("grpc", _read_grpc),
        initial_delay_seconds=r.integer("initialDelaySeconds", 0, minimum=0),
        # 0 (or unset) takes the default, as the API server's defaulting does
        timeout_seconds=r.integer("timeoutSeconds", 0, minimum=0) or 1,
        period_seconds=r.integer("periodSeconds", 0, minimum=0) or 10,
        success_threshold=r.integer("successThreshold", 0, minimum=0) or 1,
        failure_threshold=r.integer("failureThreshold", 0, minimum=0) or 3,
    )


def _read_exec(r: Reader) -> ExecAction:
    command = r.string_list("command")
    if not command:
        r.fail("command", "required: an exec probe runs a command")
    return ExecAction(command)


def _port(r: Reader) -> int | str:
    port = r.int_or_string("port", REQUIRED, int_check=_port_number, str_check=iana_svc_name)
    assert port is not None  # REQUIRED
    return port


def _read_http_get(r: Reader) -> HTTPGetAction:
    scheme = r.string("scheme", "HTTP")
    if scheme not in ("HTTP", "HTTPS"):
        r.fail("scheme", f"unsupported value {quote(scheme)} (supported: HTTP, HTTPS)")
    return HTTPGetAction(port=_port(r), path=r.string("path", ""), host=r.string("host", ""),
                         scheme=scheme, http_headers=r.objects("httpHeaders", _read_header))


def _header_name(value: str) -> str | None:
    if _HEADER_NAME.fullmatch(value):
        return None
    return (f"invalid value {quote(value)}: a valid HTTP header must consist of alphanumeric "
            "characters or '-' (e.g. 'X-Header-Name')")


def _read_header(r: Reader) -> HTTPHeader:
    return HTTPHeader(name=r.string("name", REQUIRED, check=_header_name),
                      value=r.string("value", ""))


def _read_tcp_socket(r: Reader) -> TCPSocketAction:
    return TCPSocketAction(port=_port(r), host=r.string("host", ""))


def _read_grpc(r: Reader) -> GRPCAction:
    return GRPCAction(port=r.integer("port", REQUIRED, minimum=1, maximum=65535),
                      service=r.string("service", ""))
