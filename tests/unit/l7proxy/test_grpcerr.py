"""What the waypoint answers a gRPC client itself becomes a gRPC error (l7proxy/grpcerr.py)."""

from __future__ import annotations

import pytest

from l7proxy.grpcerr import grpc_local, grpc_status_of

TEXT = [(b"content-type", b"text/plain")]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (504, b"4"),  # the waypoint's own timeout: DEADLINE_EXCEEDED
        (503, b"14"),  # no endpoint, connect refused: UNAVAILABLE
        (502, b"14"),
        (429, b"14"),  # rate limited
        (403, b"7"),  # NetworkPolicy or AuthorizationPolicy: PERMISSION_DENIED
        (408, b"2"),  # anything else: UNKNOWN
    ],
)
def test_errors_become_trailers_only_grpc_errors(status: int, code: bytes) -> None:
    out_status, headers, body = grpc_local(status, TEXT, b"why it failed\n")
    assert (out_status, body) == (200, b"")
    fields = dict(headers)
    assert fields[b"content-type"] == b"application/grpc"
    assert fields[b"grpc-status"] == code
    assert fields[b"grpc-message"] == b"why it failed"
    assert grpc_status_of(headers) == int(code)


def test_non_errors_and_answers_already_grpc_pass_unchanged() -> None:
    assert grpc_local(200, TEXT, b"ok") == (200, TEXT, b"ok")
    already = [(b"content-type", b"application/grpc"), (b"grpc-status", b"12")]
    assert grpc_local(404, already, b"") == (404, already, b"")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"grpc-status", b"0")], 0),
        ([(b"Grpc-Status", b"14")], 14),
        ([(b"grpc-status", b"x")], None),
        ([], None),
    ],
)
def test_grpc_status_of(headers: list[tuple[bytes, bytes]], status: int | None) -> None:
    assert grpc_status_of(headers) == status
