"""The node-local SVID directory (agent/svid/store.py): owner-only, whole files, read back."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.svid import store

CHAIN = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n"


def test_round_trip_and_modes(tmp_path: Path) -> None:
    d = tmp_path / "svid"
    path = store.write_svid(d, store.SvidFile("shop", "web", CHAIN, KEY))
    store.write_bundle(d, CHAIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "svids").stat().st_mode) == 0o700
    got = store.read_svids(d)
    assert got == {("shop", "web"): store.SvidFile("shop", "web", CHAIN, KEY)}
    assert store.read_bundle(d) == CHAIN
    store.remove_svid(d, "shop", "web")
    assert store.read_svids(d) == {}


def test_stray_files_are_skipped(tmp_path: Path) -> None:
    d = tmp_path / "svid"
    store.prepare(d)
    (d / "svids" / "nounderscore.pem").write_bytes(CHAIN + KEY)
    (d / "svids" / "a_b.pem").write_bytes(CHAIN)  # no key
    (d / "svids" / "a_c.txt").write_bytes(CHAIN + KEY)
    assert store.read_svids(d) == {}
    assert store.read_bundle(d) is None


@pytest.mark.parametrize("ns,sa", [("", "web"), ("a_b", "web"), ("shop", "x/y")])
def test_bad_names_refused(tmp_path: Path, ns: str, sa: str) -> None:
    with pytest.raises(ValueError):
        store.write_svid(tmp_path, store.SvidFile(ns, sa, CHAIN, KEY))


def test_key_must_be_pkcs8(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PKCS#8"):
        store.write_svid(
            tmp_path, store.SvidFile("a", "b", CHAIN, b"-----BEGIN EC PRIVATE KEY-----")
        )
