"""Conformance cases, one module per profile or feature group. `all_cases()` is the run's
table; a new route kind's profile adds a module here and one line below."""

from __future__ import annotations

from conformance.case import Case


def all_cases() -> list[Case]:
    from conformance.cases import (
        backend_client_cert,
        backend_tls,
        backend_tls_reencrypt,
        claims_more,
        frontend_tls,
        gateway_addresses,
        gateway_http,
        gateway_infra,
        gateway_more,
        gateway_retry,
        gateway_status,
        grpc,
        listenerset,
        mesh_http,
        streams,
        tls,
        tls_status,
    )

    return [*gateway_http.CASES, *gateway_more.CASES, *gateway_status.CASES, *mesh_http.CASES,
            *grpc.CASES, *streams.CASES, *claims_more.CASES,
            *gateway_addresses.CASES, *gateway_infra.CASES, *gateway_retry.CASES,
            *backend_tls.CASES,
            *backend_tls_reencrypt.CASES, *listenerset.CASES,
            *frontend_tls.CASES, *backend_client_cert.CASES,
            *tls.CASES, *tls_status.CASES]
