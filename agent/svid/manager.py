"""The node's SVID manager: keeps one X.509-SVID per workload identity its pods run as, in
the node-local SVID directory (``agent.svid.store``) the waypoint reads.

One thread runs ``run(stop)``: each round asks ``agent.svid.schedule.decide`` what to
fetch and drop, fetches through ``agent.svid.client`` and sleeps until the next renewal,
back-off end or drop, or until ``changed`` is set (a pod or namespace changed, the bundle
changed). Nothing here touches the datapath: a CA that is away, refuses or answers
nonsense costs back-off and a counted failure, never a packet.

Order of writes: the trust bundle reaches the directory (``set_bundle``) before any SVID
that needs it is used. An SVID is written only after ``identity.bundle.verify_svid``
accepted its chain under the bundle the node holds, for the ID it asked, with the key it
made; an SVID signed under a root the ConfigMap has not brought yet fails as
``unknown-ca`` and is retried with back-off until the bundle arrives.

Invalid bundle content (no root, not PEM, another trust domain) keeps the last good bundle,
is logged and reported (``report()["trust_bundle"]["error"]``).

Metrics (when a registry is given): ``tulle_svid_expiry_seconds{spiffe_id}`` (seconds until
each held SVID's notAfter, computed at scrape time: one series per identity the node holds)
and ``tulle_svid_requests_total{result}`` (``issued`` or the failure's reason: the
service's reason code, ``unknown-ca``/``expired``... for a chain that failed verification,
``wrong-identity``/``wrong-key`` for an answer not for the request).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily

from agent.svid import store
from agent.svid.client import CaRefused, CertificateClient, new_request
from agent.svid.schedule import DROP_GRACE, Held, Retry, Workload, decide, retry_after
from identity.bundle import BundleError, SvidError, TrustBundle, verify_svid
from identity.certs import (
    load_pem_chain,
    not_after,
    not_before,
    public_bytes,
    signature_problem,
    to_pem,
)
from identity.spiffe import workload_id
from identity.system import SYSTEM_NAMESPACE

log = logging.getLogger("tulle.agent.svid")
DEFAULT_LIFETIME = 86_400  # seconds (24 h, the CA's default)
MIN_LIFETIME = 60  # the CA refuses shorter (identity.ca.MIN_LIFETIME)
IDLE_WAKE = 30.0  # seconds a round sleeps at most: a missed wake-up costs no more


@dataclass(frozen=True)
class SvidConfig:
    directory: Path
    trust_domain: str
    lifetime: int = DEFAULT_LIFETIME  # seconds asked of the CA
    grace: float = DROP_GRACE  # seconds an unneeded SVID is kept
    # Where the CA's Service and the trust bundle ConfigMap are (identity.system).
    system_namespace: str = SYSTEM_NAMESPACE


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _iso(moment: float | datetime) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat()
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _anchor(chain: list[x509.Certificate], bundle: TrustBundle) -> str:
    """The fingerprint of the bundle root ``chain`` ends under ("" for none)."""
    top = chain[-1]
    for root in bundle.roots:
        if top == root or (top.issuer == root.subject and signature_problem(top, root) is None):
            return fingerprint(root)
    return ""


class SvidManager:
    def __init__(
        self,
        config: SvidConfig,
        client: CertificateClient,
        needs: Callable[[], frozenset[Workload] | None],
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.client = client
        self.needs = needs
        self.clock = clock
        self.rand = rand
        self.changed = threading.Event()
        self.lock = threading.Lock()
        self.bundle: TrustBundle | None = None
        self.bundle_error: str | None = None
        self.chains: dict[Workload, list[x509.Certificate]] = {}
        self.received: dict[Workload, float] = {}  # when each chain was written
        self.held: dict[Workload, Held] = {}
        self.retries: dict[Workload, Retry] = {}
        self.last_failure: dict[Workload, str] = {}
        self.unneeded: dict[Workload, float] = {}
        self.requests = Counter(
            "tulle_svid_requests_total",
            "CreateCertificate calls by result",
            ["result"],
            registry=registry,
        )
        if registry is not None:
            registry.register(_ExpiryCollector(self))
        self._load()

    def _load(self) -> None:
        """What a previous run left: the bundle and the SVIDs, so a restart renews on
        schedule instead of asking for every identity again."""
        directory = self.config.directory
        pem = store.read_bundle(directory)
        if pem is not None:
            try:
                self.bundle = TrustBundle.from_pem(self.config.trust_domain, pem)
            except BundleError as err:
                log.warning("ignoring the trust bundle in %s: %s", directory, err)
        for workload, svid in store.read_svids(directory).items():
            try:
                self.chains[workload] = load_pem_chain(svid.chain_pem)
                self.received[workload] = store.svid_path(directory, *workload).stat().st_mtime
            except (ValueError, OSError) as err:
                log.warning("ignoring the SVID file of %s/%s: %s", *workload, err)
        self._reanchor()

    def _reanchor(self) -> None:
        """Each held SVID's root under the bundle now ("" when the bundle does not take it:
        the schedule then refetches it as ``root-removed``)."""
        self.held = {}
        for workload, chain in self.chains.items():
            leaf = chain[0]
            root = ""
            if self.bundle is not None:
                try:
                    verify_svid(chain, self.bundle, not_before(leaf))
                    root = _anchor(chain, self.bundle)
                except SvidError:
                    pass
            self.held[workload] = Held(
                str(workload_id(self.config.trust_domain, *workload)),
                leaf.serial_number,
                not_before(leaf).timestamp(),
                not_after(leaf).timestamp(),
                root,
                self.received.get(workload, 0.0),
            )

    def set_bundle(self, trust_domain: str, roots_pem: bytes) -> bool:
        """A new trust bundle (the ConfigMap's): written to the directory, then used. False
        (and reported) when it is invalid: the last good one stays."""
        if trust_domain != self.config.trust_domain:
            return self._bad_bundle(
                f"trust domain {trust_domain!r} is not the agent's {self.config.trust_domain!r}"
            )
        try:
            bundle = TrustBundle.from_pem(trust_domain, roots_pem)
        except BundleError as err:
            return self._bad_bundle(str(err))
        with self.lock:
            if bundle != self.bundle:
                store.write_bundle(self.config.directory, bundle.to_pem())
                self.bundle = bundle
                self._reanchor()
                log.info(
                    "trust bundle: %d roots (%s)",
                    len(bundle.roots),
                    ", ".join(fingerprint(r)[:16] for r in bundle.roots),
                )
            self.bundle_error = None
        self.changed.set()
        return True

    def _bad_bundle(self, why: str) -> bool:
        log.warning("trust bundle refused, keeping the last good one: %s", why)
        with self.lock:
            self.bundle_error = why
        return False

    def bundle_missing(self, why: str) -> None:
        """The ConfigMap is gone or has no bundle: keep the last good one, report it."""
        self._bad_bundle(why)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                wake = self.step()
            except Exception:  # a bug here must not end the thread: the SVIDs would expire
                log.exception("SVID round failed; trying again")
                wake = self.clock() + 5.0
            delay = IDLE_WAKE if wake is None else max(0.0, min(IDLE_WAKE, wake - self.clock()))
            self.changed.wait(delay)
            self.changed.clear()

    def step(self) -> float | None:
        """One round: fetch and drop what the schedule says; the time of the next round."""
        now = self.clock()
        need = self.needs()  # before taking the lock: it takes the cluster state's
        with self.lock:
            if self.bundle is None:
                return None  # nothing can be verified yet: the bundle's arrival wakes us
            if need is None:
                return None  # the cluster's pods are not listed yet: a change wakes us
            roots = frozenset(fingerprint(r) for r in self.bundle.roots)
            decision = decide(
                now, need, self.held, roots, self.retries, self.unneeded, self.config.grace
            )
            self.unneeded = dict(decision.unneeded)
            for workload in decision.drop:
                store.remove_svid(self.config.directory, *workload)
                self.chains.pop(workload, None)
                self.received.pop(workload, None)
                self.held.pop(workload, None)
                log.info("dropped the SVID of %s/%s: no pod of it on this node", *workload)
        for workload, reason in decision.fetch:
            self._fetch(workload, reason)
        if decision.fetch:
            return self.clock()  # again at once: what changed meanwhile, the next wake-up
        return decision.wake_at

    def _fetch(self, workload: Workload, why: str) -> None:
        spiffe_id = workload_id(self.config.trust_domain, *workload)
        request = new_request(spiffe_id)
        with self.lock:
            bundle = self.bundle
        assert bundle is not None
        try:
            issued = self.client.create(request.csr_pem, self.config.lifetime, bundle.to_pem())
            chain = load_pem_chain("".join(issued.chain_pem).encode())
            now = datetime.fromtimestamp(self.clock(), UTC)
            got = verify_svid(chain, bundle, now)
            if got != spiffe_id:
                raise CaRefused("OK", "wrong-identity", f"asked for {spiffe_id}, got {got}")
            if public_bytes(chain[0].public_key()) != public_bytes(request.key.public_key()):
                raise CaRefused("OK", "wrong-key", "the certificate is not for the key sent")
        except CaRefused as err:
            self._failed(workload, err.reason, str(err))
            return
        except SvidError as err:
            self._failed(workload, err.reason, f"the returned chain: {err}")
            return
        except ValueError as err:  # not PEM certificates
            self._failed(workload, "malformed", f"the returned chain: {err}")
            return
        with self.lock:
            # The file holds the leaf and intermediates, never a root (store.py's layout).
            kept = [c for c in chain if c not in bundle.roots]
            store.write_svid(
                self.config.directory,
                store.SvidFile(workload[0], workload[1], to_pem(kept), request.key_pem),
            )
            self.chains[workload] = chain
            received = self.received[workload] = self.clock()
            leaf = chain[0]
            held = self.held[workload] = Held(
                str(spiffe_id),
                leaf.serial_number,
                not_before(leaf).timestamp(),
                not_after(leaf).timestamp(),
                _anchor(chain, bundle),
                received,
            )
            self.retries.pop(workload, None)
            self.last_failure.pop(workload, None)
            if held.renew_at <= received:  # the CA cut it short (its own notAfter, say):
                # renewing at once would ask again and again; wait out a back-off.
                self.retries[workload] = retry_after(1, received, self.rand)
        self.requests.labels("issued").inc()
        log.info(
            "SVID for %s (%s): serial %x until %s",
            spiffe_id,
            why,
            leaf.serial_number,
            _iso(not_after(leaf)),
        )

    def _failed(self, workload: Workload, reason: str, message: str) -> None:
        self.requests.labels(reason).inc()
        with self.lock:
            failures = self.retries[workload].failures + 1 if workload in self.retries else 1
            retry = self.retries[workload] = retry_after(failures, self.clock(), self.rand)
            self.last_failure[workload] = reason
        log.warning(
            "SVID for %s/%s refused (%s, %d in a row); again in %.1f s: %s",
            workload[0],
            workload[1],
            reason,
            failures,
            retry.at - self.clock(),
            message,
        )

    def report(self) -> dict[str, Any]:
        """The health report's section (see agent/svid/README.md for its shape)."""
        with self.lock:
            svids = [
                {
                    "spiffe_id": h.spiffe_id,
                    "serial": f"{h.serial:x}",
                    "not_after": _iso(h.not_after),
                    "renew_at": _iso(h.renew_at),
                    "root": h.root,
                }
                for _, h in sorted(self.held.items())
            ]
            roots = (
                []
                if self.bundle is None
                else [
                    {
                        "fingerprint": fingerprint(r),
                        "subject": r.subject.rfc4514_string(),
                        "not_after": _iso(not_after(r)),
                    }
                    for r in self.bundle.roots
                ]
            )
            failing = [
                {
                    "spiffe_id": str(workload_id(self.config.trust_domain, *w)),
                    "failures": r.failures,
                    "reason": self.last_failure.get(w, ""),
                    "retry_at": _iso(r.at),
                }
                for w, r in sorted(self.retries.items())
            ]
            return {
                "ca_address": self.client.address,
                "svids": svids,
                "trust_bundle": {
                    "trust_domain": self.config.trust_domain,
                    "roots": roots,
                    "error": self.bundle_error,
                },
                "svid_failures": failing,
            }

    def expiries(self) -> dict[str, float]:
        now = self.clock()
        with self.lock:
            return {h.spiffe_id: h.not_after - now for h in self.held.values()}


class _ExpiryCollector:
    """``tulle_svid_expiry_seconds``: computed when scraped, so it is never stale."""

    def __init__(self, manager: SvidManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tulle_svid_expiry_seconds",
            "Seconds until each held SVID's notAfter",
            labels=["spiffe_id"],
        )
        for spiffe_id, seconds in sorted(self.manager.expiries().items()):
            family.add_metric([spiffe_id], seconds)
        yield family

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # unchecked: the series depend on what the node holds
