"""The agent's side (agent.cni.registry): reading what the plugin wrote, answering it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from agent.cni import registry
from cni import store
from cni.plugin import run
from cni.record import AttachMark, EndpointRecord, PodRef, encode_record

from .helpers import Peers, conf, env


def rec(cid: str, ip: str, ifindex: int, uid: str = "") -> EndpointRecord:
    return EndpointRecord(
        "net",
        cid,
        "eth0",
        f"/run/netns/{cid}",
        PodRef("ns", cid, uid),
        (ip,),
        f"veth{ifindex}",
        ifindex,
    )


def test_parse_records_keeps_good_ones_and_names_damaged_files() -> None:
    a = rec("a", "10.0.0.1/24", 5)
    snap = registry.parse_records(
        {
            "net:a:eth0.json": encode_record(a),
            "net:b:eth0.json": b"{",
            "net:c:eth0.json": encode_record(rec("d", "10.0.0.4/24", 6)),  # not its own key
        }
    )
    assert snap.records == {"net:a:eth0": a}
    assert [name for name, _ in snap.damaged] == ["net:b:eth0.json", "net:c:eth0.json"]
    assert "net:d:eth0" in snap.damaged[1][1]


def test_by_ip_leaves_out_addresses_two_records_claim() -> None:
    a, b, c = rec("a", "10.0.0.1/24", 5), rec("b", "10.0.0.2/24", 6), rec("c", "10.0.0.1/24", 7)
    owner, conflicts = registry.by_ip([a, b, c])
    assert owner == {ipaddress.ip_address("10.0.0.2"): b}
    assert conflicts == {ipaddress.ip_address("10.0.0.1")}


def test_by_pod_uid_groups_a_pods_interfaces() -> None:
    a, b = rec("a", "10.0.0.1/24", 5, uid="u1"), rec("b", "10.0.0.2/24", 6, uid="u1")
    assert registry.by_pod_uid([a, b, rec("c", "10.0.0.3/24", 7)]) == {"u1": [a, b]}


def test_unattached_ignores_marks_of_a_previous_sandbox() -> None:
    a, b = rec("a", "10.0.0.1/24", 5), rec("b", "10.0.0.2/24", 6)
    marks = {a.key: AttachMark("net", "a", "eth0", 5), b.key: AttachMark("net", "b", "eth0", 60)}
    assert registry.unattached([a, b], marks) == [b]


def test_the_agents_mark_ends_the_plugins_wait_and_del_clears_it(tmp_path: Path) -> None:
    """The whole handshake through the files: ADD records, the agent reads and marks, CHECK
    passes, DEL forgets both."""
    stdin = conf(tmp_path, attachTimeout=5)

    def agent_attaches(state: Path, wanted: EndpointRecord, timeout: float) -> bool:
        snap = registry.read_records(state)
        assert list(snap.records.values()) == [wanted] and snap.damaged == ()
        assert registry.unattached(snap.records.values(), registry.read_marks(state)) == [wanted]
        registry.mark_attached(state, wanted)
        return store.wait_attached(state, wanted, timeout)

    out, status = run(env("ADD"), lambda: stdin, Peers(), agent_attaches)
    assert status == 0, out
    snap = registry.read_records(tmp_path)
    assert registry.unattached(snap.records.values(), registry.read_marks(tmp_path)) == []
    assert run(env("CHECK"), lambda: stdin, Peers())[1] == 0
    assert run(env("DEL"), lambda: stdin, Peers()) == ("", 0)
    assert registry.read_records(tmp_path).records == {} and registry.read_marks(tmp_path) == {}


def test_reading_a_missing_directory_finds_nothing(tmp_path: Path) -> None:
    assert registry.read_records(tmp_path / "none").records == {}
    assert registry.read_marks(tmp_path / "none") == {}
