"""IdentityState: a first start generates and publishes; a root the user replaced in the
Secret takes over at the next refresh (signer, bundle overlap, serving certificate); the
Pod record the informer's dicts make; the command line's parsing."""

from __future__ import annotations

import argparse
import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509

from controlplane.__main__ import duration, host_port
from controlplane.kube import pod_record
from controlplane.roots import secret_for
from controlplane.service import IdentityState, Settings, serving_names
from identity.authz import PodRecord
from identity.ca import CertificateAuthority
from identity.certs import load_pem_chain
from tests.unit.controlplane.fakeapi import FakeObjects
from tests.unit.identity.helpers import NOW, TD

IP = ipaddress.IPv4Address("10.240.0.1")


def _serving(state: IdentityState) -> list[x509.Certificate]:
    config = state._current_serving()
    return load_pem_chain(config.chain_pem)


def test_first_start_then_a_replaced_root_takes_over_at_the_next_refresh() -> None:
    api, now = FakeObjects(), [NOW]
    seen: list[CertificateAuthority] = []
    state = IdentityState(
        api,
        Settings(trust_domain=TD, serving_ips=(IP,)),
        clock=lambda: now[0],
        on_signer_change=seen.append,
    )
    assert state.refresh() is True
    first = state.ca
    assert state.bundle().roots == (first.root,) and seen == [first]
    leaf = _serving(state)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == serving_names("tulle-system")
    assert sans.get_values_for_type(x509.IPAddress) == [IP]
    state.credentials()  # the server starts with it: no handshake needs another
    assert state.serving_config() is None
    assert state.refresh() is False and state.serving_config() is None  # nothing changed
    # The user replaces the Secret with their own root.
    theirs = CertificateAuthority.generate_root("theirs", NOW - timedelta(days=1))
    api.put(
        {**secret_for(theirs), "metadata": api.get("Secret", "tulle-system", "tulle-ca")["metadata"]}
    )  # type: ignore[index]
    now[0] = NOW + timedelta(minutes=1)
    assert state.refresh() is True
    assert state.ca.cert == theirs.cert and seen[-1].cert == theirs.cert
    assert state.bundle().roots == (theirs.root, first.root)  # the overlap
    assert state.serving_config() is not None  # the next handshake gets the new one
    assert _serving(state)[0].issuer == theirs.cert.subject
    # After the default overlap (24 h + 1 h) only the new root is trusted.
    now[0] = NOW + timedelta(minutes=1, hours=25)
    state.refresh()
    assert state.bundle().roots == (theirs.root,)


def test_serving_is_renewed_at_half_life() -> None:
    api, now = FakeObjects(), [NOW]
    state = IdentityState(api, Settings(serving_lifetime=timedelta(hours=2)), clock=lambda: now[0])
    state.refresh()
    state.credentials()
    before = _serving(state)[0].serial_number
    now[0] = NOW + timedelta(minutes=59)
    state.refresh()
    assert _serving(state)[0].serial_number == before and state.serving_config() is None
    now[0] = NOW + timedelta(minutes=61)
    state.refresh()
    assert _serving(state)[0].serial_number != before and state.serving_config() is not None


def test_overlap_defaults_to_the_max_lifetime_plus_an_hour() -> None:
    assert Settings(max_lifetime=timedelta(hours=2)).overlap == timedelta(hours=3)
    assert Settings(root_overlap=timedelta(minutes=5)).overlap == timedelta(minutes=5)


def test_pod_records_from_informer_dicts() -> None:
    pod = {
        "metadata": {"name": "web-1", "namespace": "shop", "deletionTimestamp": "x"},
        "spec": {"nodeName": "n1", "serviceAccountName": "web"},
        "status": {"phase": "Running"},
    }
    assert pod_record(pod) == PodRecord("shop", "web-1", "n1", "web", "Running", True)
    assert pod_record({"metadata": {"name": "p", "namespace": "a"}}) == PodRecord(
        "a", "p", None, None, "Pending", False
    )


def test_command_line_values() -> None:
    assert duration("90") == timedelta(seconds=90) and duration("24h") == timedelta(hours=24)
    assert duration("7d") == timedelta(days=7) and duration("30m") == timedelta(minutes=30)
    assert host_port("10.240.0.1:15012") == ("10.240.0.1", 15012)
    assert host_port("[::1]:1") == ("::1", 1)
    for bad in ("1.5h", "h", "-1s"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
            duration(bad)
    for bad in ("15012", "host:", "host:99999"):
        with pytest.raises(argparse.ArgumentTypeError, match="not HOST:PORT"):
            host_port(bad)
