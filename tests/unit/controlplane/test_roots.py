"""The root Secret (generate, adopt, the 409 race between replicas, user-provided shapes)
and the trust bundle ConfigMap with rotation timing (pure, and through restarts)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from controlplane.roots import (
    CONFIGMAP_NAME,
    RETIRING,
    SECRET_NAME,
    ca_from_secret,
    configmap_for,
    fingerprint,
    load_ca,
    plan_bundle,
    publish_bundle,
    read_configmap,
    secret_for,
)
from identity.ca import CaError, CertificateAuthority
from identity.certs import load_pem_chain, not_after, to_pem
from identity.spiffe import SpiffeId
from tests.unit.controlplane.fakeapi import FakeObjects
from tests.unit.identity.helpers import NOW, TD, csr_pem, key_pem, uri

DAY = timedelta(hours=24)
OVERLAP = DAY + timedelta(hours=1)


def _root(name: str = "root") -> CertificateAuthority:
    return CertificateAuthority.generate_root(name, NOW - timedelta(days=1))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_missing_secret_is_generated_and_stored_then_adopted() -> None:
    api = FakeObjects()
    first = load_ca(api, NOW)
    stored = api.get("Secret", "tulle-system", SECRET_NAME)
    assert stored is not None and stored["type"] == "kubernetes.io/tls"
    assert set(stored["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    again = load_ca(api, NOW)  # a restart, or the second replica
    assert again.cert == first.cert and again.root == first.root and api.writes == 1


def test_two_replicas_racing_agree_on_the_winners_root() -> None:
    api = FakeObjects()
    winner = _root("winner")
    api.before_write = lambda _obj: api.put(secret_for(winner))  # it stores first
    got = load_ca(api, NOW)
    assert got.cert == winner.cert  # the loser's generated root was dropped


def test_a_user_secret_with_an_intermediate_and_the_root_in_ca_crt() -> None:
    root = _root()
    mid = root.intermediate("mid", NOW - timedelta(hours=1))
    key = mid.key
    secret = {
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(to_pem([mid.cert])),
            "tls.key": _b64(key_pem(key)),
            "ca.crt": _b64(to_pem([root.cert])),
        },
    }
    ca = ca_from_secret(secret)
    assert ca.cert == mid.cert and ca.root == root.cert


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ({"type": "Opaque", "data": {}}, "has type 'Opaque'; want kubernetes.io/tls"),
        ({"type": "kubernetes.io/tls", "data": {}}, "needs tls.crt and tls.key"),
        (
            {"type": "kubernetes.io/tls", "data": {"tls.crt": "%%", "tls.key": "AA=="}},
            "'tls.crt' is not base64",
        ),
        (
            {"type": "kubernetes.io/tls", "data": {"tls.crt": _b64(b"junk"), "tls.key": "AA=="}},
            "no PEM certificate",
        ),
    ],
)
def test_bad_secrets_are_named(secret: dict, message: str) -> None:
    with pytest.raises(CaError, match="Secret tulle-system/tulle-ca") as err:
        ca_from_secret(secret)
    assert message in str(err.value)


def test_a_key_that_does_not_match_is_refused() -> None:
    a, b = _root("a"), _root("b")
    secret = secret_for(a)
    secret["data"]["tls.key"] = secret_for(b)["data"]["tls.key"]
    with pytest.raises(CaError, match="does not match"):
        ca_from_secret(secret)


def test_rotation_timing_is_old_plus_new_for_the_overlap_then_new_only() -> None:
    old, new = _root("old").root, _root("new").root
    roots, retiring = plan_bundle((), {}, old, NOW, OVERLAP)
    assert roots == (old,) and retiring == {}
    # The Secret now holds `new`: both trusted, the old one until NOW + overlap.
    roots, retiring = plan_bundle(roots, retiring, new, NOW, OVERLAP)
    assert roots == (new, old) and retiring == {fingerprint(old): NOW + OVERLAP}
    # Later refreshes keep the first schedule (it is not pushed back).
    later = NOW + timedelta(hours=20)
    assert plan_bundle(roots, retiring, new, later, OVERLAP) == (roots, retiring)
    # Just before the end both are trusted; at the end only the new one.
    just_before = NOW + OVERLAP - timedelta(seconds=1)
    assert plan_bundle(roots, retiring, new, just_before, OVERLAP)[0] == (new, old)
    assert plan_bundle(roots, retiring, new, NOW + OVERLAP, OVERLAP) == ((new,), {})
    # Rolling back to the old root during the overlap: it is current again, not retiring.
    back = plan_bundle(roots, retiring, old, later, OVERLAP)
    assert back == ((old, new), {fingerprint(new): later + OVERLAP})


def test_the_overlap_outlives_every_svid_signed_under_the_old_root() -> None:
    old_ca, new = _root("old"), _root("new").root
    # The last SVID under the old root, at the maximum lifetime, signed as the root changes.
    spiffe = SpiffeId.parse(f"spiffe://{TD}/ns/shop/sa/web")
    leaf = old_ca.issue(csr_pem(sans=[uri(spiffe)]), spiffe, NOW, DAY)[0]
    _, retiring = plan_bundle((old_ca.root,), {}, new, NOW, OVERLAP)
    assert retiring[fingerprint(old_ca.root)] > not_after(leaf)


def test_the_configmap_carries_the_bundle_and_the_schedule_through_a_restart() -> None:
    api = FakeObjects()
    old, new = _root("old"), _root("new")
    bundle = publish_bundle(api, TD, old.root, NOW, OVERLAP)
    cm = api.get("ConfigMap", "tulle-system", CONFIGMAP_NAME)
    assert cm is not None and cm["data"]["trust-domain"] == TD
    assert load_pem_chain(cm["data"]["roots.pem"].encode()) == [old.root]
    assert bundle.roots == (old.root,)
    publish_bundle(api, TD, new.root, NOW, OVERLAP)
    # A restarted replica an hour later reads the same schedule back.
    roots, retiring = read_configmap(api.get("ConfigMap", "tulle-system", CONFIGMAP_NAME))
    assert roots == (new.root, old.root) and retiring == {fingerprint(old.root): NOW + OVERLAP}
    bundle = publish_bundle(api, TD, new.root, NOW + timedelta(hours=1), OVERLAP)
    assert bundle.roots == (new.root, old.root)
    writes = api.writes
    publish_bundle(api, TD, new.root, NOW + timedelta(hours=2), OVERLAP)
    assert api.writes == writes  # nothing changed: nothing written
    bundle = publish_bundle(api, TD, new.root, NOW + OVERLAP, OVERLAP)
    assert bundle.roots == (new.root,)
    cm = api.get("ConfigMap", "tulle-system", CONFIGMAP_NAME)
    assert cm is not None and cm["metadata"]["annotations"][RETIRING] == "{}"


def test_a_conflicting_replica_is_re_read_and_an_unreadable_configmap_rewritten() -> None:
    api = FakeObjects()
    old, new = _root("old"), _root("new")
    publish_bundle(api, TD, old.root, NOW, OVERLAP)
    # Another replica rotates first; our update conflicts and plans again from its write.
    api.before_write = lambda _obj: api.put(
        configmap_for(TD, (new.root, old.root), {fingerprint(old.root): NOW + OVERLAP})
    )
    bundle = publish_bundle(api, TD, new.root, NOW + timedelta(minutes=5), OVERLAP)
    assert bundle.roots == (new.root, old.root)
    _, retiring = read_configmap(api.get("ConfigMap", "tulle-system", CONFIGMAP_NAME))
    assert retiring == {fingerprint(old.root): NOW + OVERLAP}  # the first replica's time
    assert read_configmap(
        {"data": {"roots.pem": "junk"}, "metadata": {"annotations": {RETIRING: "not json"}}}
    ) == ((), {})
