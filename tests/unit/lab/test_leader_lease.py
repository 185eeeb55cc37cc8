"""Leader election (controlplane/leader) against the lab API server, as the tulle-controller
ServiceAccount (deploy/controller/rbac.yaml, which the lab seeds): two candidates share Lease
tulle-system/tulle-controller; one clock, advanced by hand, for both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, Client

from controlplane.controller import ACCOUNT, LEASE_NAME
from controlplane.controller.__main__ import client
from controlplane.leader import ElectionConfig, KubeLeases, LeaderElection, LostRace
from controlplane.leader.lease import LEASE
from identity.system import SYSTEM_NAMESPACE
from lab.apiserver.certs import write_kubeconfig
from tests.unit.lab.apilab import ApiLab


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def account(apilab: ApiLab, tmp_path: Path) -> Path:
    """The controller ServiceAccount's kubeconfig, with its namespace in place."""
    apilab.store.create({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": SYSTEM_NAMESPACE}})
    assert apilab.server is not None
    return write_kubeconfig(tmp_path / "ctl.kubeconfig", "t", f"https://127.0.0.1:{apilab.port}",
                            apilab.creds, token=apilab.tokens[ACCOUNT], user=ACCOUNT)


@pytest.fixture
def api(account: Path) -> Iterator[Client]:
    with client(account) as c:
        yield c


class Events:
    def __init__(self) -> None:
        self.log: list[str] = []


def candidate(api: Client, name: str, clock: Clock, events: Events,
              leases: Any = None) -> LeaderElection:
    return LeaderElection(
        leases or KubeLeases(api), SYSTEM_NAMESPACE, LEASE_NAME, ElectionConfig(name),
        on_started=lambda: events.log.append(f"{name} started"),
        on_stopped=lambda: events.log.append(f"{name} stopped"), clock=clock,
    )


def spec(apilab: ApiLab) -> dict[str, Any]:
    lease = apilab.store.get("Lease", SYSTEM_NAMESPACE, LEASE_NAME)
    assert lease is not None
    return dict(lease["spec"])


def test_exactly_one_leads_and_the_other_takes_over_when_it_stops_renewing(
    apilab: ApiLab, api: Client
) -> None:
    clock, events = Clock(), Events()
    a, b = candidate(api, "a", clock, events), candidate(api, "b", clock, events)
    a.step()
    b.step()
    assert (a.leading(), b.leading()) == (True, False)
    assert events.log == ["a started"]
    first = spec(apilab)
    assert (first["holderIdentity"], first["leaseTransitions"]) == ("a", 0)
    assert first["leaseDurationSeconds"] == 15 and first["acquireTime"] == first["renewTime"]
    for _ in range(5):  # a renews every retry period; b keeps waiting
        clock.now += 2.0
        a.step()
        b.step()
        assert (a.leading(), b.leading()) == (True, False)
    renewed = spec(apilab)
    assert renewed["acquireTime"] == first["acquireTime"]
    assert renewed["renewTime"] > first["renewTime"]
    # a stops renewing (paused, partitioned): at its renew deadline it stops leading ...
    clock.now += 10.0
    assert not a.leading()
    b.step()
    assert not b.leading()  # ... before b may take over: 15 s after b last saw a renewal
    clock.now += 5.0
    b.step()
    assert b.leading()
    took = spec(apilab)
    assert (took["holderIdentity"], took["leaseTransitions"]) == ("b", 1)
    assert took["acquireTime"] == took["renewTime"] != first["acquireTime"]
    a.step()  # a comes back: it reads b's Lease and stays a follower
    assert (a.leading(), b.leading()) == (False, True)
    assert events.log == ["a started", "b started", "a stopped"]


class RacingLeases(KubeLeases):
    """Another writer updates the Lease between this candidate's read and its write."""

    def __init__(self, api: Client, race: Any) -> None:
        super().__init__(api)
        self.race = race

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.race is not None:
            race, self.race = self.race, None
            race()
        return super().replace(obj)


def test_a_stale_update_loses(apilab: ApiLab, api: Client) -> None:
    clock, events = Clock(), Events()
    a = candidate(api, "a", clock, events)
    a.step()
    b = candidate(api, "b", clock, events)
    clock.now += 20.0  # a is gone; b sees the Lease expire ...
    b.step()
    clock.now += 15.0
    stale = apilab.store.get("Lease", SYSTEM_NAMESPACE, LEASE_NAME)
    assert stale is not None

    b.leases = RacingLeases(api, a.step)  # ... but a renews between b's read and write
    assert not b.try_acquire_or_renew()
    assert (a.leading(), b.leading()) == (True, False)
    assert spec(apilab)["holderIdentity"] == "a"
    with pytest.raises(LostRace):  # the API's answer: 409 on the old resourceVersion
        KubeLeases(api).replace(stale)


def test_two_first_candidates_create_once(apilab: ApiLab, api: Client) -> None:
    clock, events = Clock(), Events()
    a = candidate(api, "a", clock, events)
    b = candidate(api, "b", clock, events)
    b.leases = RacingLeases(api, None)
    original_create = b.leases.create

    def create_after_a(obj: dict[str, Any]) -> dict[str, Any]:
        a.step()  # a creates it between b's read (none) and b's create
        return original_create(obj)

    b.leases.create = create_after_a  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew()
    assert (a.leading(), b.leading()) == (True, False)
    assert spec(apilab)["holderIdentity"] == "a"


def test_release_hands_over_at_once(apilab: ApiLab, api: Client) -> None:
    clock, events = Clock(), Events()
    a, b = candidate(api, "a", clock, events), candidate(api, "b", clock, events)
    a.step()
    b.step()
    a.release()
    released = spec(apilab)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == ("", 1)
    assert events.log == ["a started", "a stopped"]
    clock.now += 0.1
    b.step()
    assert b.leading()
    assert (spec(apilab)["holderIdentity"], spec(apilab)["leaseTransitions"]) == ("b", 1)
    b.release()
    b.release()  # twice: the second finds nothing of its own to give up
    assert spec(apilab)["holderIdentity"] == ""


@pytest.mark.parametrize(
    ("call", "namespace", "name"),
    [
        ("delete", SYSTEM_NAMESPACE, LEASE_NAME),
        ("get", SYSTEM_NAMESPACE, "kube-controller-manager"),
        ("get", "kube-system", LEASE_NAME),
        ("create", "kube-system", "tulle-controller"),
    ],
)
def test_the_account_touches_no_other_lease(
    apilab: ApiLab, api: Client, call: str, namespace: str, name: str
) -> None:
    for ns in (SYSTEM_NAMESPACE, "kube-system"):
        for lease_name in (LEASE_NAME, "kube-controller-manager"):
            apilab.store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": lease_name, "namespace": ns},
                                 "spec": {"holderIdentity": "kcm"}})
    with pytest.raises(ApiError) as refused:
        if call == "create":
            api.create(LEASE({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                              "metadata": {"name": "x", "namespace": namespace}}))
        else:
            getattr(api, call)(LEASE, name, namespace=namespace)
    assert refused.value.status.code == 403
