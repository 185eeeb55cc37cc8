"""Conformance of tulle-cni's commands (CNI SPEC 1.0.0/1.1.0) with a fake netlink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.cni import registry
from cni import store
from cni.link import HostPeer
from cni.plugin import run
from cni.record import AttachMark, EndpointRecord, PodRef, mark_for, record_key
from cni.spec import CniError

from .helpers import CID, NETNS, PREV_RESULT, Peers, Waiter, conf, env, error

KEY = record_key("k8s-pod-network", CID, "eth0")


def call(
    command: str,
    stdin: bytes,
    peers: Peers | None = None,
    waiter: Waiter | None = None,
    **over: str,
) -> tuple[str, int]:
    return run(env(command, **over), lambda: stdin, peers or Peers(), waiter or Waiter())


def added(state: Path) -> EndpointRecord:
    out, status = call("ADD", conf(state))
    assert status == 0, out
    rec = store.read_record(state, KEY)
    assert rec is not None
    return rec


# -- VERSION ----------------------------------------------------------------------------------
def test_version_lists_the_supported_versions_in_the_asked_version() -> None:
    out, status = call("VERSION", b'{"cniVersion": "1.0.0"}')
    assert status == 0
    assert json.loads(out) == {
        "cniVersion": "1.0.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }


@pytest.mark.parametrize("stdin", [b"", b"{", b'{"cniVersion": "9.9.9"}'])
def test_version_answers_whatever_came_on_stdin(stdin: bytes) -> None:
    out, status = call("VERSION", stdin)
    assert status == 0 and json.loads(out)["cniVersion"] == "1.1.0"


# -- ADD --------------------------------------------------------------------------------------
def test_add_passes_prev_result_through_and_records_the_pod(tmp_path: Path) -> None:
    waiter = Waiter()
    out, status = call("ADD", conf(tmp_path), waiter=waiter)
    assert status == 0
    assert json.loads(out) == PREV_RESULT
    assert store.read_record(tmp_path, KEY) == EndpointRecord(
        network="k8s-pod-network",
        container_id=CID,
        ifname="eth0",
        netns=NETNS,
        pod=PodRef("shop", "web-1", "7c1d-uid"),
        ips=("10.244.1.5/24",),
        host_ifname="veth5a1b2c3d",
        host_ifindex=17,
    )
    assert waiter.asked == [(tmp_path, 17, 10.0)]


def test_add_outside_kubernetes_records_no_pod(tmp_path: Path) -> None:
    out, status = call("ADD", conf(tmp_path), CNI_ARGS="<unset>")
    assert status == 0, out
    rec = store.read_record(tmp_path, KEY)
    assert rec is not None and rec.pod is None


def test_add_without_waiting_when_attach_timeout_is_zero(tmp_path: Path) -> None:
    waiter = Waiter(attached=False)
    out, status = call("ADD", conf(tmp_path, attachTimeout=0), waiter=waiter)
    assert status == 0, out
    assert waiter.asked == []


def test_add_times_out_with_try_again_later_and_keeps_the_record(tmp_path: Path) -> None:
    out, status = call("ADD", conf(tmp_path, attachTimeout=0.5), waiter=Waiter(attached=False))
    assert status == 1
    doc = error(out)
    assert doc["code"] == 11 and "veth5a1b2c3d" in doc["msg"] and doc["cniVersion"] == "1.0.0"
    # The runtime answers a failed ADD with DEL; until then the agent may still attach.
    assert store.read_record(tmp_path, KEY) is not None


def test_add_drops_a_mark_left_by_a_previous_sandbox(tmp_path: Path) -> None:
    store.write_mark(tmp_path, mark_for(added(tmp_path)))
    call("ADD", conf(tmp_path), peers=Peers(HostPeer("veth99", 99, 2)))
    assert store.read_mark(tmp_path, KEY) is None


def test_add_needs_prev_result(tmp_path: Path) -> None:
    peers = Peers()
    out, status = call("ADD", conf(tmp_path, prev=False), peers=peers)
    assert status == 1 and error(out)["code"] == 7 and "prevResult" in error(out)["msg"]
    assert peers.calls == 0 and store.keys(tmp_path) == []


def test_add_reports_a_pod_without_a_veth_with_the_plugins_code(tmp_path: Path) -> None:
    peers = Peers(error=CniError(100, "eth0 in the pod is not a veth"))
    out, status = call("ADD", conf(tmp_path), peers=peers)
    assert status == 1 and error(out)["code"] == 100
    assert store.keys(tmp_path) == []


def test_add_reports_an_unwritable_state_dir_as_io_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out, status = call("ADD", conf(blocker / "state"))
    assert status == 1 and error(out)["code"] == 5


# -- DEL --------------------------------------------------------------------------------------
def test_del_forgets_the_record_and_the_mark_and_is_idempotent(tmp_path: Path) -> None:
    store.write_mark(tmp_path, mark_for(added(tmp_path)))
    peers = Peers()
    for _ in range(2):
        out, status = call("DEL", conf(tmp_path), peers=peers)
        assert (out, status) == ("", 0)
        assert store.keys(tmp_path) == []
    assert peers.calls == 0  # DEL never looks at the kernel: the netns may be gone


def test_del_without_netns_prev_result_or_state_succeeds(tmp_path: Path) -> None:
    out, status = call("DEL", conf(tmp_path / "never-made", prev=False), CNI_NETNS="<unset>")
    assert (out, status) == ("", 0)


def test_del_removes_only_its_own_attachment(tmp_path: Path) -> None:
    added(tmp_path)
    call("ADD", conf(tmp_path), CNI_CONTAINERID="other")
    call("DEL", conf(tmp_path))
    assert store.keys(tmp_path) == [record_key("k8s-pod-network", "other", "eth0")]


# -- CHECK ------------------------------------------------------------------------------------
def test_check_passes_when_the_record_matches_and_the_agent_attached(tmp_path: Path) -> None:
    registry.mark_attached(tmp_path, added(tmp_path))
    assert call("CHECK", conf(tmp_path)) == ("", 0)


def test_check_without_a_record_fails(tmp_path: Path) -> None:
    out, status = call("CHECK", conf(tmp_path))
    assert status == 1 and error(out)["code"] == 101 and "no endpoint record" in error(out)["msg"]


def test_check_names_what_changed(tmp_path: Path) -> None:
    registry.mark_attached(tmp_path, added(tmp_path))
    out, status = call("CHECK", conf(tmp_path), peers=Peers(HostPeer("veth5a1b2c3d", 23, 2)))
    doc = error(out)
    assert status == 1 and doc["code"] == 101
    assert "host_ifindex: recorded 17, now 23" in doc["details"]


def test_check_fails_until_the_agent_attached(tmp_path: Path) -> None:
    added(tmp_path)
    out, status = call("CHECK", conf(tmp_path))
    assert status == 1 and error(out)["code"] == 102
    assert call("CHECK", conf(tmp_path, attachTimeout=0)) == ("", 0)


def test_check_fails_on_a_damaged_record(tmp_path: Path) -> None:
    added(tmp_path)
    store.endpoint_path(tmp_path, KEY).write_text("{")
    out, status = call("CHECK", conf(tmp_path))
    assert status == 1 and error(out)["code"] == 101 and "damaged" in error(out)["msg"]


def test_check_needs_prev_result_and_spec_0_4_0(tmp_path: Path) -> None:
    registry.mark_attached(tmp_path, added(tmp_path))
    out, status = call("CHECK", conf(tmp_path, prev=False))
    assert status == 1 and error(out)["code"] == 7
    out, status = call("CHECK", conf(tmp_path, version="0.3.1"))
    assert status == 1 and error(out)["code"] == 1 and "CHECK" in error(out)["msg"]


# -- STATUS and GC (1.1.0) --------------------------------------------------------------------
def test_status_is_ready_once_the_agent_announced_itself(tmp_path: Path) -> None:
    out, status = call("STATUS", conf(tmp_path, version="1.1.0", prev=False))
    assert status == 1 and error(out)["code"] == 50
    registry.announce(tmp_path, node="node-1")
    assert call("STATUS", conf(tmp_path, version="1.1.0", prev=False)) == ("", 0)
    registry.withdraw(tmp_path)
    assert call("STATUS", conf(tmp_path, version="1.1.0", prev=False))[1] == 1


def test_status_without_waiting_needs_no_agent(tmp_path: Path) -> None:
    stdin = conf(tmp_path, version="1.1.0", prev=False, attachTimeout=0)
    assert call("STATUS", stdin) == ("", 0)


@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_and_gc_need_spec_1_1_0(tmp_path: Path, command: str) -> None:
    extra: dict[str, Any] = {"cni.dev/valid-attachments": []}
    out, status = call(command, conf(tmp_path, **extra))
    assert status == 1 and error(out)["code"] == 1 and command in error(out)["msg"]


def test_gc_removes_attachments_the_runtime_no_longer_holds(tmp_path: Path) -> None:
    for cid in ("keep", "drop"):
        call("ADD", conf(tmp_path), CNI_CONTAINERID=cid)
    call("ADD", conf(tmp_path, name="other-net"), CNI_CONTAINERID="drop")
    store.write_mark(tmp_path, AttachMark("k8s-pod-network", "gone", "eth0", 5))
    valid = [{"containerID": "keep", "ifname": "eth0"}]
    stdin = conf(tmp_path, version="1.1.0", prev=False, **{"cni.dev/valid-attachments": valid})
    assert call("GC", stdin, CNI_CONTAINERID="<unset>", CNI_IFNAME="<unset>") == ("", 0)
    assert store.keys(tmp_path) == ["k8s-pod-network:keep:eth0", "other-net:drop:eth0"]


@pytest.mark.parametrize("attachments", ["<unset>", "all", [{"containerID": 1}], ["x"]])
def test_gc_needs_a_list_of_valid_attachments(tmp_path: Path, attachments: object) -> None:
    stdin = conf(
        tmp_path, version="1.1.0", prev=False, **{"cni.dev/valid-attachments": attachments}
    )
    out, status = call("GC", stdin)
    assert status == 1 and error(out)["code"] == 7
