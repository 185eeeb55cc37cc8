"""Conformance cases, one module per profile or feature group. `all_cases()` is the run's
table; a new route kind's profile adds a module here and one line below."""

from __future__ import annotations

from conformance.case import Case


def all_cases() -> list[Case]:
    from conformance.cases import (
        frontend_tls,
        gateway_http,
        gateway_more,
        gateway_status,
        grpc,
        mesh_http,
        streams,
    )

    return [*gateway_http.CASES, *gateway_more.CASES, *gateway_status.CASES, *mesh_http.CASES,
            *grpc.CASES, *streams.CASES, *frontend_tls.CASES]
