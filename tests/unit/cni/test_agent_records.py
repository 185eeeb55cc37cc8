"""The agent reads tulle-cni's records (agent.cni.pods, .attachments, .watch, and the
controller's seam): a pod's address and veth come from its record before the API has them,
the mark is written only once the endpoint entry and the programs are there, a record of
another pod never hands its address or veth to this one, and no bad record stops the node."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from agent.cni import registry
from agent.cni.attachments import CniAttachments, live
from agent.cni.pods import (
    CniPods,
    record_ipv4,
    record_of,
    records_by_pod,
    with_record_address,
)
from agent.cni.watch import FULL_EVERY, RecordWatch, listing
from agent.datapath import applier as applier_mod
from agent.datapath import maps
from agent.datapath.controller import DatapathController, ObjectChange
from agent.flows.store import FlowRing
from agent.model.convert import from_dict
from agent.model.core import Pod
from bench.control.replan import NoMaps, stub_map_writes
from cni import store
from cni.record import (
    EndpointRecord,
    PodRef,
    RecordError,
    decode_record,
    encode_record,
    record_key,
)

NODE = "n1"
IP = "10.244.1.7"


def pod_dict(name: str = "web", uid: str = "u1", ip: str | None = None, node: str = NODE,
             version: str = "1", host_network: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if ip:
        status.update(podIP=ip, phase="Running")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "shop", "name": name, "uid": uid,
                         "resourceVersion": version, "labels": {"app": name}},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "c", "image": "x"}]},
            "status": status}


def pod(**kw: Any) -> Pod:
    out = from_dict(pod_dict(**kw))
    assert isinstance(out, Pod)
    return out


def record(name: str = "web", uid: str = "u1", ips: tuple[str, ...] = (f"{IP}/24",),
           ifindex: int = 41, cid: str | None = None, netns: str = "") -> EndpointRecord:
    cid = cid or f"c-{name}-{uid}"
    return EndpointRecord("net", cid, "eth0", netns or f"/nonexistent-dir/{cid}",
                          PodRef("shop", name, uid), ips, f"veth{ifindex}", ifindex)


# -- the planner's pods ------------------------------------------------------------------
def test_a_pod_without_an_address_gets_its_records() -> None:
    patched = with_record_address(pod(), record())
    assert patched.status.pod_ip == IP
    assert patched.metadata == pod().metadata and patched.spec == pod().spec


def test_the_api_address_stands_unless_a_record_of_the_pods_own_uid_says_otherwise() -> None:
    served = pod(ip="10.244.1.99")
    assert with_record_address(served, record(uid="")) is served  # cannot prove it is its own
    # the sandbox made again (same pod UID) with a new address before the kubelet said so
    assert with_record_address(served, record(uid="u1")).status.pod_ip == IP


def test_a_record_of_another_uid_or_a_host_network_pod_changes_nothing() -> None:
    assert with_record_address(pod(uid="u2"), record(uid="u1")).status.pod_ip is None
    assert with_record_address(pod(host_network=True), record()).status.pod_ip is None
    # a record without the pod's UID (a runtime that passes no K8S_POD_UID) still names it
    assert with_record_address(pod(), record(uid="")).status.pod_ip == IP


def test_only_ipv4_addresses_count() -> None:
    assert record_ipv4(record(ips=("fd00::5/64", f"{IP}/24"))) == IP
    assert record_ipv4(record(ips=("fd00::5/64",))) is None
    assert with_record_address(pod(), record(ips=("fd00::5/64",))).status.pod_ip is None


def test_a_pod_with_two_records_of_its_own_gets_none_and_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pods = CniPods(NODE)
    pods.patch(pod())
    with caplog.at_level(logging.WARNING, logger="tulle.cni"):
        pods.set_records([record(cid="a"), record(cid="b", ifindex=42)])
    assert "shop/web has several tulle-cni records" in caplog.text
    assert pods.patch(pod()).status.pod_ip is None


def test_a_stale_record_of_an_earlier_pod_under_the_name_does_not_block_the_new_one() -> None:
    """A StatefulSet's web-0 made again on this node while the old sandbox's DEL never came:
    the new pod (its own UID) gets its own record's address."""
    stale = record(uid="old", cid="a", ips=("10.244.1.50/24",), ifindex=30)
    fresh = record(uid="new", cid="b")
    assert records_by_pod([stale, fresh]) == {("shop", "web"): (stale, fresh)}
    assert record_of(pod(uid="new"), [stale, fresh]) == fresh
    pods = CniPods(NODE)
    pods.patch(pod(uid="new"))
    [patched] = pods.set_records([stale, fresh])
    assert patched.status.pod_ip == IP


def test_cni_pods_hand_back_what_a_record_change_reaches() -> None:
    pods = CniPods(NODE)
    served = pod()
    assert pods.patch(served) is served  # no record yet
    [again] = pods.set_records([record()])
    assert again.status.pod_ip == IP
    assert pods.patch(served) is again  # the same object while neither changed
    assert pods.set_records([record()]) == []
    [back] = pods.set_records([])  # the record went (DEL): the API's Pod again
    assert back is served
    # pods of other nodes are not this agent's, whatever a record says
    elsewhere = pod(name="api", node="n2")
    assert pods.patch(elsewhere) is elsewhere
    assert pods.set_records([record(name="api")]) == []


# -- the applier's veths and marks --------------------------------------------------------
def test_live_drops_a_record_whose_netns_is_gone_only_where_it_can_see(tmp_path: Path) -> None:
    present = tmp_path / "ns-a"
    present.touch()
    here = record(cid="a", netns=str(present))
    gone = record(cid="b", netns=str(tmp_path / "ns-b"))
    unseen = record(cid="c", netns="/nonexistent-dir/ns-c")  # a container without /run/netns
    proc = record(cid="d", netns="/proc/999999999/ns/net")
    assert live([here, gone, unseen, proc]) == ([here, unseen, proc], [gone])


def test_the_mark_is_written_once_for_the_records_veth_and_withdrawn(tmp_path: Path) -> None:
    cni = CniAttachments(tmp_path)
    rec = record()
    assert cni.set_records([rec]) and not cni.set_records([rec])  # changed, then not
    ip = ipaddress.IPv4Address(IP)
    assert cni.by_ip.get(ip) == rec
    assert cni.match(ip, "shop", "web") == (rec, False)
    assert cni.match(ip, "shop", "api") == (None, True)  # another pod's veth
    cni.attached(rec, 99)  # another veth than the record's: not an answer to it
    assert registry.read_marks(tmp_path) == {}
    cni.attached(rec, rec.host_ifindex)
    assert store.wait_attached(tmp_path, rec, 0)
    store.mark_path(tmp_path, rec.key).unlink()
    cni.attached(rec, rec.host_ifindex)  # once: a mark is not rewritten on every round
    assert registry.read_marks(tmp_path) == {}
    cni.detached(rec.host_ifindex)  # a record still naming the veth: its mark goes too
    registry.mark_attached(tmp_path, rec)  # as an earlier agent left it
    cni.detached(rec.host_ifindex)
    assert registry.read_marks(tmp_path) == {}


def test_an_address_two_records_claim_is_nobodys(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    cni = CniAttachments(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tulle.cni"):
        cni.set_records([record(cid="a"), record(name="api", cid="b", ifindex=42)])
    assert cni.by_ip.get(ipaddress.IPv4Address(IP)) is None
    assert f"address {IP} is in two tulle-cni records" in caplog.text


# -- the watch ---------------------------------------------------------------------------
def test_the_watch_reads_on_change_and_skips_temporary_files(tmp_path: Path) -> None:
    taken: list[list[EndpointRecord]] = []
    clock = [0.0]
    watch = RecordWatch(tmp_path, taken.append, clock=lambda: clock[0])
    assert watch.poll() and taken == [[]]  # the first look always reads
    assert not watch.poll()
    store.write_record(tmp_path, record())
    (tmp_path / "endpoints" / ".half.json.tmp").write_bytes(b"{")
    assert watch.poll() and taken[-1] == [record()]
    info = os.stat(store.endpoint_path(tmp_path, record().key))
    assert listing(tmp_path / "endpoints") == {(f"{record().key}.json", info.st_ino,
                                                info.st_mtime_ns)}
    store.write_record(tmp_path, record(ifindex=77))  # rewritten: a new inode by rename
    assert watch.poll() and taken[-1][0].host_ifindex == 77
    clock[0] += 10  # and in full now and then, whatever the listing says
    assert watch.poll()


def test_the_watch_names_damaged_and_stale_records_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken: list[list[EndpointRecord]] = []
    (tmp_path / "endpoints").mkdir()
    (tmp_path / "endpoints" / "bad.json").write_bytes(b"[]")
    stale = record(cid="s", netns=str(tmp_path / "gone-netns"))
    store.write_record(tmp_path, stale)
    store.write_record(tmp_path, record(name="api", ifindex=50))
    with caplog.at_level(logging.WARNING, logger="tulle.cni"):
        RecordWatch(tmp_path, taken.append).poll()
    assert [r.pod.name for r in taken[0] if r.pod] == ["api"]
    assert "bad.json ignored" in caplog.text
    assert f"{stale.key} ignored: its netns is gone" in caplog.text


# -- the controller: records to endpoints to marks ----------------------------------------
@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    endpoints: dict[int, tuple[Any, ...]] = {}
    attached: list[int] = []
    routed: list[Any] = []

    def no_route(_ipr: Any, ip: Any) -> None:
        routed.append(ip)  # and no route: the sandbox is not wired

    with stub_map_writes([]):
        monkeypatch.setattr(maps, "write_endpoint",
                            lambda _dp, ifindex, *entry: endpoints.__setitem__(ifindex, entry))
        monkeypatch.setattr(maps, "delete_endpoint", lambda _dp, ifindex: endpoints.pop(ifindex))
        monkeypatch.setattr(applier_mod.attach, "veth_for", no_route)
        links = {30: "veth30", 41: "veth41", 52: "veth52"}  # the node's veths (by ifindex)
        monkeypatch.setattr(applier_mod.attach, "link_name", lambda _ipr, i: links.get(i))

        def attach(_ipr: Any, ifindex: int, *_fds: int) -> None:
            # the endpoint entry comes first, and no mark before the programs are on
            assert ifindex in endpoints
            assert not any(m.host_ifindex == ifindex
                           for m in registry.read_marks(tmp_path).values())
            if ifindex not in links:  # gone between the lookup and the attach
                raise NetlinkError(errno.ENODEV, "No such device")
            attached.append(ifindex)

        monkeypatch.setattr(applier_mod.attach, "attach", attach)
        dp = NoMaps()
        dp.programs_loaded = True  # type: ignore[attr-defined]
        dp.from_pod_fd = dp.to_pod_fd = -1  # type: ignore[attr-defined]
        agent = DatapathController(NODE, dp, FlowRing(16),  # type: ignore[arg-type]
                                   cni_state_dir=tmp_path)
        agent.routed = routed  # type: ignore[attr-defined]
        agent.links = links  # type: ignore[attr-defined]
        yield agent, endpoints, attached, tmp_path
        agent.close_netlink()
        # Before the stub's own restore: undone after it, monkeypatch would put the stub's
        # mocks back for good (they are what it saw when it patched).
        monkeypatch.undo()


def change(obj: dict[str, Any], deleted: bool = False) -> ObjectChange:
    meta = obj["metadata"]
    return ObjectChange("Pod", meta["namespace"], meta["name"], None, None if deleted else obj)


def test_a_new_pods_record_is_policed_and_marked_before_the_api_has_its_address(
    wired: Any,
) -> None:
    agent, endpoints, attached, state = wired
    agent.apply_changes([change(pod_dict())])  # scheduled, no sandbox yet
    assert endpoints == {}
    rec = record()
    store.write_record(state, rec)  # tulle-cni's ADD
    RecordWatch(state, agent.cni_update).poll()
    assert agent.cni_pending
    agent.program_pending()
    assert not agent.cni_pending
    assert endpoints[41][0] == ipaddress.IPv4Address(IP) and attached == [41]
    assert store.wait_attached(state, rec, 0)  # what the ADD waits for
    identity = endpoints[41][1]
    # the kubelet then writes the address: nothing changes, nothing is attached again
    agent.apply_changes([change(pod_dict(ip=IP, version="2"))])
    assert endpoints[41][1] == identity and attached == [41]
    # the pod goes: its endpoint and the mark go
    agent.apply_changes([change(pod_dict(ip=IP, version="2"), deleted=True)])
    assert endpoints == {} and registry.read_marks(state) == {}
    assert agent.routed == []  # its record named the veth: no route lookup


def test_a_resync_keeps_the_records_address(wired: Any) -> None:
    agent, endpoints, attached, state = wired
    store.write_record(state, record())
    RecordWatch(state, agent.cni_update).poll()  # before the first sync: nothing to replan
    agent.resync([pod_dict()])
    assert list(endpoints) == [41] and attached == [41]
    agent.resync([pod_dict()])
    assert attached == [41]
    agent.resync([])  # the pod is gone from the list
    assert endpoints == {} and agent.routed == []


def test_a_record_for_another_pod_under_the_name_is_not_taken(wired: Any) -> None:
    agent, endpoints, _attached, state = wired
    agent.apply_changes([change(pod_dict(uid="new"))])
    store.write_record(state, record(uid="old"))  # the deleted pod's sandbox, not yet DEL'd
    RecordWatch(state, agent.cni_update).poll()
    agent.program_pending()
    assert endpoints == {} and registry.read_marks(state) == {}
    assert agent.routed == []  # without an address there is nothing to look up


def test_a_new_sandbox_for_the_same_address_gets_its_own_veth_and_mark(wired: Any) -> None:
    agent, endpoints, attached, state = wired
    agent.apply_changes([change(pod_dict(ip=IP))])  # the API has the address already
    assert agent.routed == [ipaddress.IPv4Address(IP)]  # no record yet: by route (none)
    first = record()
    store.write_record(state, first)
    clock = [0.0]
    watch = RecordWatch(state, agent.cni_update, clock=lambda: clock[0])
    watch.poll()
    agent.program_pending()
    assert attached == [41]
    # the sandbox is recreated (ADD after a failed one): same key, a new host veth
    store.remove(state, first.key)
    second = record(ifindex=52)
    store.write_record(state, second)
    clock[0] += FULL_EVERY  # read whatever the listing says (the inode may come back)
    assert watch.poll()
    agent.program_pending()
    assert list(endpoints) == [52] and attached == [41, 52]
    assert store.wait_attached(state, second, 0)
    assert record_key("net", second.container_id, "eth0") == second.key


def test_a_records_veth_is_never_policed_as_another_pod(wired: Any) -> None:
    """P is still listed with address X; Q's new record holds X, and Q's Pod is not in the
    agent's cache yet: Q's veth gets neither P's identity nor a mark (by route neither)."""
    agent, endpoints, attached, state = wired
    agent.apply_changes([change(pod_dict(name="old", uid="p", ip=IP))])
    agent.routed.clear()  # no record yet: P's veth looked for by route (there is none)
    store.write_record(state, record(name="new", uid="q"))
    RecordWatch(state, agent.cni_update).poll()
    agent.program_pending()
    assert endpoints == {} and attached == [] and registry.read_marks(state) == {}
    assert agent.routed == []
    agent.apply_changes([change(pod_dict(name="old", uid="p", ip=IP), deleted=True),
                         change(pod_dict(name="new", uid="q"))])
    assert list(endpoints) == [41] and store.wait_attached(state, record(name="new", uid="q"), 0)


def test_a_record_whose_veth_is_gone_stops_no_other_pod(wired: Any) -> None:
    agent, endpoints, attached, state = wired
    gone = record(name="gone", uid="g", ips=("10.244.1.30/24",), ifindex=30)
    alive = record()
    for rec in (gone, alive):
        store.write_record(state, rec)
    del agent.links[30]  # its netns went without a DEL
    RecordWatch(state, agent.cni_update).poll()
    agent.resync([pod_dict(name="gone", uid="g"), pod_dict()])
    assert attached == [41] and store.wait_attached(state, alive, 0)
    assert not store.wait_attached(state, gone, 0)
    assert agent.routed == [ipaddress.IPv4Address("10.244.1.30")]  # looked for by route


def test_a_veth_gone_during_the_attach_stops_no_other_pod(wired: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    agent, endpoints, attached, state = wired
    gone = record(name="gone", uid="g", ips=("10.244.1.30/24",), ifindex=30)
    for rec in (gone, record()):
        store.write_record(state, rec)
    real = dict(agent.links)
    monkeypatch.setattr(applier_mod.attach, "link_name", lambda _ipr, i: real.get(i))
    del agent.links[30]  # the lookup still finds it; the attach gets ENODEV
    RecordWatch(state, agent.cni_update).poll()
    agent.resync([pod_dict(name="gone", uid="g"), pod_dict()])
    assert attached == [41] and store.wait_attached(state, record(), 0)


def test_a_full_read_that_finds_nothing_new_programs_nothing(wired: Any) -> None:
    agent, _endpoints, _attached, state = wired
    store.write_record(state, record())
    clock = [0.0]
    watch = RecordWatch(state, agent.cni_update, clock=lambda: clock[0])
    watch.poll()
    agent.program_pending()
    clock[0] += FULL_EVERY
    assert watch.poll()  # read in full ...
    assert not agent.cni_pending  # ... and nothing to program


def test_a_record_with_a_bad_address_is_damaged_not_fatal(tmp_path: Path) -> None:
    bad = encode_record(record()).replace(f"{IP}/24".encode(), b"nonsense")
    with pytest.raises(RecordError, match="'nonsense', not an address/prefix"):
        decode_record(bad)
    (tmp_path / "endpoints").mkdir()
    (tmp_path / "endpoints" / f"{record().key}.json").write_bytes(bad)
    taken: list[list[EndpointRecord]] = []
    RecordWatch(tmp_path, taken.append).poll()
    assert taken == [[]]


def test_the_watch_thread_survives_what_its_callback_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_records: list[EndpointRecord]) -> None:
        raise ValueError("boom")

    watch = RecordWatch(tmp_path, broken)
    with caplog.at_level(logging.ERROR, logger="tulle.cni"):
        watch.poll_logged()
    assert "reading them failed" in caplog.text and "boom" in caplog.text
