"""TLS contexts from the SVID directory (l7proxy/hbone/identities.py), the refusal names
(refusal.py) and the kTLS probe (ktls.py)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from agent.svid.store import SVID_DIR, remove_svid, write_bundle, write_svid
from identity.certs import to_pem
from l7proxy.hbone import ktls, refusal
from l7proxy.hbone.identities import SvidDirectory
from tests.unit.hbone.harness import TD, mint, root, serial_of, spiffe


def test_loads_contexts_and_reloads_on_change(tmp_path: Path) -> None:
    ca = root()
    assert SvidDirectory(tmp_path / "none", TD).current is None  # no bundle yet
    write_bundle(tmp_path, to_pem([ca.root]))
    web, db = mint(ca, "shop", "web"), mint(ca, "shop", "db")
    write_svid(tmp_path, web)
    write_svid(tmp_path, db)
    svids = SvidDirectory(tmp_path, TD)
    creds = svids.current
    assert creds is not None
    assert set(creds.held) == {spiffe("shop", "web"), spiffe("shop", "db")}
    assert creds.held[spiffe("shop", "web")].serial == serial_of(web)
    assert creds.server_id == spiffe("shop", "db")  # the first in SPIFFE-ID order
    ctx = creds.client_context(spiffe("shop", "web"))
    assert ctx is not None
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    assert creds.client_context(spiffe("shop", "batch")) is None

    assert not svids.refresh()  # nothing changed: nothing reloaded
    renewed = mint(ca, "shop", "web")
    write_svid(tmp_path, renewed)
    assert svids.refresh()
    assert svids.current is not None
    assert svids.current.held[spiffe("shop", "web")].serial == serial_of(renewed)
    remove_svid(tmp_path, "shop", "db")
    assert svids.refresh()
    assert set(svids.current.held) == {spiffe("shop", "web")}


def test_a_bad_svid_is_left_out_and_a_bad_bundle_keeps_the_last(tmp_path: Path) -> None:
    ca = root()
    write_bundle(tmp_path, to_pem([ca.root]))
    web = mint(ca, "shop", "web")
    write_svid(tmp_path, web)
    other_key = mint(ca, "shop", "db").key_pem
    (tmp_path / SVID_DIR / "shop_db.pem").write_bytes(web.chain_pem + other_key)
    svids = SvidDirectory(tmp_path, TD)
    assert svids.current is not None
    assert set(svids.current.held) == {spiffe("shop", "web")}  # key mismatch: skipped
    before = svids.current
    (tmp_path / "bundle.pem").write_bytes(b"not a bundle")
    os.utime(tmp_path / "bundle.pem", ns=(1, 1))
    assert not svids.refresh()
    assert svids.current is before


def test_handshake_reasons() -> None:
    def verify_error(code: int) -> ssl.SSLCertVerificationError:
        err = ssl.SSLCertVerificationError(1, "certificate verify failed")
        err.verify_code = code
        err.verify_message = "m"
        return err

    assert refusal.handshake_reason(verify_error(20)) == refusal.UNKNOWN_CA
    assert refusal.handshake_reason(verify_error(10)) == refusal.CERT_EXPIRED
    assert refusal.handshake_reason(verify_error(9)) == refusal.CERT_EXPIRED
    assert refusal.handshake_reason(verify_error(26)) == refusal.HANDSHAKE_FAILED
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    assert refusal.handshake_reason(alert) == refusal.UNKNOWN_CA
    alert.reason = "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    assert refusal.handshake_reason(alert) == refusal.CERT_EXPIRED
    assert refusal.handshake_reason(ConnectionResetError()) == refusal.HANDSHAKE_FAILED
    assert refusal.svid_reason("wrong-trust-domain") == refusal.WRONG_IDENTITY
    assert refusal.svid_reason("not-an-svid") == refusal.HANDSHAKE_FAILED
    assert refusal.describe(verify_error(20)) == "certificate verify failed: m"


def test_ktls_probe_matches_the_kernel() -> None:
    # The probe's answer is whether the tls ULP can be attached; the kernel lists it in
    # tcp_available_ulp once the module is loaded (the probe's setsockopt loads it).
    found = ktls.probe()
    available = Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    assert found == ("tls" in available)
