"""How the agent hands cluster changes to its datapath: the whole state once listed, then each
change on its own (incremental planning), and the whole state again after a failed round."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.datapath.controller import ObjectChange
from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.source import connect
from agent.node_agent import AGENT_KINDS, Agent
from tests.unit.kube.conftest import Lab, RecordingStop, account_kubeconfig
from tests.unit.kube.test_node_agent import wait_for


class RecordingDatapath:
    """Stands in for DatapathController: records what the agent hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail_next_change = False
        self.lock = threading.Lock()

    def resync(self, objects: list[dict[str, Any]]) -> None:
        with self.lock:
            self.calls.append(("resync", {_kind_name(o) for o in objects}))

    def apply_changes(self, changes: list[ObjectChange]) -> None:
        with self.lock:
            if self.fail_next_change:
                self.fail_next_change = False
                raise RuntimeError("map full")
            self.calls.append(("changes", [(c.kind, c.name, c.new is None) for c in changes]))

    def kinds_of_calls(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.calls]


def _kind_name(obj: Any) -> tuple[str, str]:
    """A dict's or (Services, EndpointSlices: agent.node_agent.MODEL_KINDS) a model's."""
    if isinstance(obj, dict):
        return obj["kind"], obj["metadata"]["name"]
    return obj.kind, obj.metadata.name


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}}


@pytest.fixture
def running(lab: Lab) -> Iterator[tuple[Agent, RecordingDatapath]]:
    lab.store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                  backoff=Backoff(0.02, 0.2))
    datapath = RecordingDatapath()
    agent.datapath = datapath  # type: ignore[assignment]
    agent.source.start()
    syncer = threading.Thread(target=agent.sync_forever, daemon=True)
    syncer.start()
    try:
        yield agent, datapath
    finally:
        agent.stop.set()
        agent.source.stop()
        syncer.join(timeout=5)


def test_listed_state_then_each_change_alone(
    lab: Lab, running: tuple[Agent, RecordingDatapath]
) -> None:
    agent, datapath = running
    wait_for(lambda: datapath.kinds_of_calls()[:1] == ["resync"], "the first full sync")
    assert ("Namespace", "default") in datapath.calls[0][1]
    lab.store.apply(service("web"))
    wait_for(lambda: "changes" in datapath.kinds_of_calls(), "the Service as a change")
    assert datapath.kinds_of_calls() == ["resync", "changes"]
    assert datapath.calls[1][1] == [("Service", "web", False)]
    lab.store.delete("Service", "default", "web")
    wait_for(lambda: len(datapath.calls) == 3, "the deletion as a change")
    assert datapath.calls[2] == ("changes", [("Service", "web", True)])
    assert agent.first_sync_s is not None and agent.first_sync_s > 0
    assert agent.first_synced.is_set()  # what the deferred tracer compile waits for


def test_a_failed_round_is_followed_by_a_full_resync(
    lab: Lab, running: tuple[Agent, RecordingDatapath]
) -> None:
    agent, datapath = running
    wait_for(lambda: datapath.kinds_of_calls() == ["resync"], "the first full sync")
    datapath.fail_next_change = True
    lab.store.apply(service("web"))
    # The failed change is not lost: the next round replans everything, with the Service.
    wait_for(lambda: datapath.kinds_of_calls() == ["resync", "resync"], "a full resync", 10.0)
    assert ("Service", "web") in datapath.calls[1][1]
    assert agent.last_error is None


@pytest.fixture
def recorded(lab: Lab) -> Iterator[tuple[Agent, RecordingDatapath, RecordingStop]]:
    lab.store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                  backoff=Backoff(0.02, 0.2))
    stop = agent.stop = RecordingStop()
    datapath = RecordingDatapath()
    agent.datapath = datapath  # type: ignore[assignment]
    agent.source.start()
    syncer = threading.Thread(target=agent.sync_forever, daemon=True)
    syncer.start()
    try:
        yield agent, datapath, stop
    finally:
        stop.set()
        agent.source.stop()
        syncer.join(timeout=5)


def test_a_change_after_a_quiet_spell_is_applied_at_once(
    lab: Lab, recorded: tuple[Agent, RecordingDatapath, RecordingStop],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, datapath, stop = recorded
    monkeypatch.setattr("agent.node_agent.SYNC_DEBOUNCE", 0.3)
    wait_for(lambda: datapath.kinds_of_calls() == ["resync"], "the first full sync")
    time.sleep(0.4)  # quiet for longer than the debounce
    mark = len(stop.waits)
    lab.store.apply(service("web"))
    wait_for(lambda: len(datapath.calls) == 2, "the Service as a change")
    assert datapath.calls[1] == ("changes", [("Service", "web", False)])
    # Leading edge: no debounce wait between the change's arrival and its sync.
    assert not [w for w in stop.waits[mark:] if w is not None and w <= 0.3]


def test_a_burst_right_after_a_sync_is_applied_in_one_round(
    lab: Lab, recorded: tuple[Agent, RecordingDatapath, RecordingStop],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, datapath, _ = recorded
    monkeypatch.setattr("agent.node_agent.SYNC_DEBOUNCE", 2.0)
    wait_for(lambda: datapath.kinds_of_calls() == ["resync"], "the first full sync")
    lab.store.apply(service("a"))  # within the debounce of the first sync: both wait it out
    lab.store.apply(service("b"))
    wait_for(lambda: len(datapath.calls) >= 2, "the burst as changes")
    assert datapath.calls[1:] == [("changes", [("Service", "a", False), ("Service", "b", False)])]


def test_a_relist_that_changes_nothing_asks_for_no_full_resync(lab: Lab) -> None:
    """An unserved kind (the Gateway API without its CRDs) is listed again every few
    seconds and finds nothing new: no resync of the whole cluster for that; a relist that
    does change something (its resync deltas) still asks for one."""
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")))
    agent.needs_resync = False  # as after the first sync
    agent.source.state.listed.update(AGENT_KINDS)
    agent.handle("HTTPRoute", None)
    assert not agent.needs_resync
    assert agent.changed.is_set()
    agent.handle("Service", Delta("ADDED", ("default", "a"), service("a"), 7, resync=True))
    agent.handle("Service", None)
    assert agent.needs_resync


def test_the_sync_loop_is_woken_once_every_kind_is_listed_not_per_listed_object(
    lab: Lab,
) -> None:
    """Before the state is synced the sync loop can do nothing: waking it for each of a first
    list's 20,000 objects only took the GIL from the lists (old behaviour). The list that
    completes the state wakes it, as does every change after."""
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")))
    state = agent.source.state
    *first, last = AGENT_KINDS
    for kind in first:
        state.mark_listed(kind, 5)
        agent.handle(kind, None)
    agent.handle("Service", Delta("ADDED", ("default", "a"), service("a"), 6, resync=True))
    assert not agent.changed.is_set()
    assert agent.needs_resync  # the object is not lost: the first sync plans everything
    state.mark_listed(last, 7)  # as ClusterSource does, before telling the agent
    agent.handle(last, None)
    assert agent.changed.is_set()
    agent.changed.clear()
    agent.handle("Service", Delta("MODIFIED", ("default", "a"), service("a"), 8))
    assert agent.changed.is_set()
