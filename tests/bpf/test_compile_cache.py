"""The compile cache in the kernel: a second start with the same inputs adopts the pinned
programs and maps without BCC (maps keep their contents, packets are still translated, flow
events still arrive), and every way the pins or the record can differ falls back to a compile
that says why in one log line."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from agent.datapath import maps, templates
from agent.datapath.bpf_loader import BPF, BPF_DIR, load_fn, load_program, map_fd
from agent.datapath.maglev import maglev_table
from agent.datapath.native import obj_pin
from agent.datapath.programs import FROM_POD, PROGRAM_SOURCES, Datapath, load_datapath
from agent.datapath.testrun import SkBuff, test_run
from lab.state import pin_dir

pytestmark = pytest.mark.bpf

REPO = Path(__file__).resolve().parents[2]
CLIENT, BACKEND, VIP = "10.244.1.2", "10.244.2.3", "10.96.0.50"
CLIENT_ID, BACKEND_ID = 300, 400
IFINDEX = 1  # lo stands in for the pod's veth in test runs
COMPILING = "datapath: compiling, not adopting the pinned programs: "


@dataclass
class Node:
    pin: Path
    state: Path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node whose first start compiled (and recorded) the datapath and wrote a client
    endpoint and a one-backend service into the pinned maps."""
    pin = pin_dir("test" + secrets.token_hex(3), "n1")
    here = Node(pin, tmp_path / "state")
    try:
        dp = load_datapath(pin, state_dir=here.state)
        # Compiled, recorded, then adopted like a restart: the BCC module is gone.
        assert dp.compiled and dp.adopted is not None and dp.bpf is None
        assert (here.state / templates.RECORD_NAME).is_file()
        assert (pin / FROM_POD).exists()
        maps.write_endpoint(dp, IFINDEX, ipaddress.IPv4Address(CLIENT), CLIENT_ID, 0)
        maps.write_ipcache(dp, {ipaddress.IPv4Address(CLIENT): CLIENT_ID,
                                ipaddress.IPv4Address(BACKEND): BACKEND_ID})
        backends = [(ipaddress.IPv4Address(BACKEND), 8080)]
        maps.write_service(dp, ipaddress.IPv4Address(VIP), 80, 6, backends,
                           maglev_table([f"{BACKEND}:8080"]), 0, None)
        dp.close()
        yield here
    finally:
        shutil.rmtree(pin.parent, ignore_errors=True)


def start(node: Node, caplog: pytest.LogCaptureFixture, **kwargs: object) -> tuple[Datapath, str]:
    """Load as an agent start would; the datapath and the reason it compiled ("" if not)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tulle.datapath"):
        dp = load_datapath(node.pin, state_dir=node.state, **kwargs)  # type: ignore[arg-type]
    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith(COMPILING)]
    assert len(reasons) == (1 if dp.compiled else 0), reasons  # one line, when it compiles
    return dp, reasons[0][len(COMPILING):] if reasons else ""


ADOPT_SCRIPT = r"""
import json, sys
from pathlib import Path
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from agent.datapath import maps
from agent.datapath.flowevents import RECORD_SIZE
from agent.datapath.programs import load_datapath
from agent.datapath.ringbuf import MappedRingBuffer
from agent.datapath.testrun import SkBuff, test_run

dp = load_datapath(Path(sys.argv[1]), state_dir=Path(sys.argv[2]))
ring_table = dp.table("flow_events_v1")
ring = MappedRingBuffer(ring_table.map_fd, ring_table.max_entries, RECORD_SIZE)
ring.read()  # whatever an earlier start left
ctx = SkBuff()
ctx.ifindex = 1
syn = Ether() / IP(src="10.244.1.2", dst="10.96.0.50") / TCP(sport=40000, dport=80, flags="S")
run = test_run(dp.from_pod_fd, bytes(syn), ctx=ctx)
out = Ether(run.data_out)
events = [dp.event(raw) for raw in ring.read()]
ring.close()
print(json.dumps({
    "adopted": dp.adopted is not None and not dp.compiled,
    "endpoints": {str(k): str(v[0]) for k, v in maps.read_endpoints(dp).items()},
    "services": [str(k[0]) for k in maps.read_service_slots(dp)],
    "verdict": run.retval,
    "to": [out[IP].dst, out[TCP].dport],
    "events": [[ev.type, ev.verdict, str(maps.from_be32(ev.orig_daddr))] for ev in events],
    "conntrack": len(dp.table("ct_v1").items()),
    "lost": dp.events_lost(),
    "bcc_imported": any(m == "bcc" or m.startswith("bcc.") for m in sys.modules),
}))
dp.close()
"""


def test_a_second_start_adopts_without_bcc_and_still_forwards(node: Node) -> None:
    """In a fresh process, as an agent restart: no BCC module is ever imported."""
    result = subprocess.run(
        [sys.executable, "-c", ADOPT_SCRIPT, str(node.pin), str(node.state)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "adopted the programs pinned in" in result.stderr or seen["adopted"]
    assert seen["adopted"] is True and seen["bcc_imported"] is False
    assert seen["endpoints"] == {str(IFINDEX): CLIENT} and seen["services"] == [VIP]
    assert seen["verdict"] == 0 and seen["to"] == [BACKEND, 8080]  # TC_ACT_OK, translated
    assert seen["events"] == [[1, 6, VIP]]  # NEW, TRANSLATED, to the VIP: the ring is live
    assert seen["conntrack"] == 2 and seen["lost"] == 0  # the service entry and the egress one


def test_the_connection_an_adopted_start_tracked_survives_the_next_compile(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    adopted, _ = start(node, caplog)
    assert adopted.adopted is not None and not adopted.compiled
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    syn = Ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=41000, dport=80, flags="S")
    assert test_run(adopted.from_pod_fd, bytes(syn), ctx=ctx).retval == 0
    adopted.close()
    compiled, why = start(node, caplog, cflags=["-DTULLE_TEST_FLAG=1"])
    assert "cflags changed" in why
    assert len(compiled.table("ct_v1").items()) == 2  # BCC adopted the pinned maps
    compiled.close()


def test_a_changed_source_compiles(node: Node, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    copy = tmp_path / "from_pod.c"
    copy.write_text(PROGRAM_SOURCES[0].read_text() + "/* changed */\n")
    dp, why = start(node, caplog, sources=[copy, *PROGRAM_SOURCES[1:]])
    assert dp.compiled and why == "the source_sha256 changed since the last compile"
    assert maps.read_endpoints(dp)[IFINDEX][0] == ipaddress.IPv4Address(CLIENT)  # kept
    dp.close()
    again, why = start(node, caplog, sources=[copy, *PROGRAM_SOURCES[1:]])  # now recorded
    assert not again.compiled and why == ""
    again.close()


def test_a_changed_flag_compiles(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    dp, why = start(node, caplog, cflags=["-DTULLE_TEST_FLAG=1"])
    assert dp.compiled and why == "the cflags changed since the last compile"
    dp.close()


def _edit_record(node: Node, edit: object, *, digest: bool = True) -> None:
    path = node.state / templates.RECORD_NAME
    record = json.loads(path.read_text())
    edit(record)  # type: ignore[operator]
    if digest:
        record["digest"] = templates._digest(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("edit", "digest", "words"),
    [
        (lambda r: r["programs"][FROM_POD].update(tag="00" * 8), True, "has tag"),
        (lambda r: r["programs"][FROM_POD]["map_ids"].pop(), True, "uses maps"),
        (lambda r: r["tables"]["ct_v1"].update(id=r["tables"]["ipcache_v1"]["id"]), True,
         "table ct_v1: map"),
        (lambda r: r["tables"]["endpoints_v1"]["leaf"][1].pop(), True, "types of"),
        (lambda r: r["programs"][FROM_POD].update(tag="00" * 8), False, "digest"),
    ],
    ids=["tag", "map-ids", "table-id", "leaf-type", "no-digest"],
)
def test_a_tampered_record_compiles(node: Node, caplog: pytest.LogCaptureFixture,
                                    edit: object, digest: bool, words: str) -> None:
    """The kernel, not the file, has the last word: a record edited consistently (digest
    recomputed) is still refused for what the pinned objects really are."""
    _edit_record(node, edit, digest=digest)
    dp, why = start(node, caplog)
    assert dp.compiled and words in why, why
    dp.close()
    again, _ = start(node, caplog)  # the compile recorded itself afresh
    assert not again.compiled
    again.close()


def test_a_replaced_pinned_program_compiles(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    probe = load_program([BPF_DIR / "probe_parse.c"], [])
    try:
        (node.pin / FROM_POD).unlink()
        obj_pin(load_fn(probe, "probe_parse", BPF.SCHED_CLS).fd, node.pin / FROM_POD)
    finally:
        probe.cleanup()
    dp, why = start(node, caplog)
    assert dp.compiled and "is 'probe_parse'" in why, why
    dp.close()


def test_the_same_program_on_other_maps_compiles(node: Node,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A fresh compile of the very same source, pinned in place: same instructions (same
    tag), but its unpinned maps (the flow ring, drop counters) are not the recorded ones."""
    other = load_datapath(node.pin)  # compiles, records nothing, pins no program
    try:
        (node.pin / FROM_POD).unlink()
        obj_pin(other.from_pod_fd, node.pin / FROM_POD)
    finally:
        other.close()
    dp, why = start(node, caplog)
    assert dp.compiled and "uses maps" in why, why
    dp.close()


def test_a_replaced_pinned_map_compiles(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """The pin of a map the programs use now names another map (the waypoint opens maps by
    their pins): adopting would split the two."""
    source = load_program([BPF_DIR / "probe_parse.c"], [])
    try:
        (node.pin / "tulle_config_v1").unlink()
        obj_pin(map_fd(source, "tulle_config_v1"), node.pin / "tulle_config_v1")
    finally:
        source.cleanup()
    dp, why = start(node, caplog)
    assert dp.compiled and "no longer pins map" in why, why
    dp.close()



def test_a_compiled_start_forwards_through_what_it_adopted(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """After its compile, a start adopts its own pins and drops the BCC module (as a restart
    would serve them): the program fds it hands out still translate, its maps hold the
    fixture's writes, and its flow ring is live."""
    dp, why = start(node, caplog, cflags=["-DTULLE_TEST_FLAG=1"])
    try:
        assert dp.compiled and "cflags changed" in why
        assert dp.bpf is None and dp.adopted is not None
        ctx = SkBuff()
        ctx.ifindex = IFINDEX
        syn = Ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=42000, dport=80, flags="S")
        run = test_run(dp.from_pod_fd, bytes(syn), ctx=ctx)
        out = Ether(run.data_out)
        assert run.retval == 0 and [out[IP].dst, out[TCP].dport] == [BACKEND, 8080]
        assert maps.read_endpoints(dp)[IFINDEX][0] == ipaddress.IPv4Address(CLIENT)
        assert dp.events_lost() == 0
    finally:
        dp.close()


def test_a_compile_hands_its_maps_over_before_the_verifier_runs(
        node: Node, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """``maps_ready`` gets the compiled maps before any program loads (a fresh node's first
    sync writes them beside the verifier): on fds of their own, typed as an adoption types
    them, and the very maps the loaded datapath then serves."""
    from agent.datapath import bpf_loader, programs

    handed: list[tuple[Datapath, list[str]]] = []
    loaded: list[str] = []
    real_load_fn = bpf_loader.load_fn

    def load_fn_seen(bpf: BPF, name: str, prog_type: int) -> BPF.Function:
        loaded.append(name)
        return real_load_fn(bpf, name, prog_type)

    monkeypatch.setattr(bpf_loader, "load_fn", load_fn_seen)

    def maps_ready(early: Datapath) -> None:
        handed.append((early, list(loaded)))
        maps.write_ipcache(early, {ipaddress.IPv4Address("10.244.9.9"): 999})

    dp, why = start(node, caplog, cflags=["-DTULLE_TEST_FLAG=2"], maps_ready=maps_ready)
    try:
        assert dp.compiled and "cflags changed" in why and len(handed) == 1
        early, programs_by_then = handed[0]
        assert programs_by_then == [] and not early.programs_loaded and dp.programs_loaded
        assert maps.read_ipcache(dp)[ipaddress.IPv4Address("10.244.9.9")] == 999
        # The fixture's writes before this compile are there too: the same pinned maps.
        assert maps.read_endpoints(early)[IFINDEX][0] == ipaddress.IPv4Address(CLIENT)
        early.close()  # its own fds: the loaded datapath's maps stay
        assert maps.read_endpoints(dp)[IFINDEX][0] == ipaddress.IPv4Address(CLIENT)
    finally:
        dp.close()
        assert programs.FROM_POD in loaded


def test_a_compile_it_cannot_adopt_serves_the_bcc_module(
        node: Node, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> templates.Adopted:
        raise templates.Mismatch("refused by the test")

    monkeypatch.setattr(templates, "adopt", refuse)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tulle.datapath"):
        dp = load_datapath(node.pin, state_dir=node.state)
    try:
        assert dp.compiled and dp.bpf is not None and dp.adopted is None
        assert any("adopting its pins failed: refused by the test" in r.getMessage()
                   for r in caplog.records)
        assert maps.read_endpoints(dp)[IFINDEX][0] == ipaddress.IPv4Address(CLIENT)
    finally:
        dp.close()


# -- KernelTable against BCC's tables, on the very same maps ------------------------------------


@pytest.fixture
def both(node: Node, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Datapath, Datapath]]:
    """The same pinned datapath twice: adopted (KernelTable) and compiled (BCC tables)."""
    adopted, _ = start(node, caplog)
    compiled = load_datapath(node.pin)  # no state dir: compiles, adopts the pinned maps
    try:
        yield adopted, compiled
    finally:
        adopted.close()
        compiled.close()


def _layout(t: object) -> object:
    from tests.unit.datapath.test_tabletypes import layout

    return layout(t)


def test_every_table_has_bccs_types(both: tuple[Datapath, Datapath]) -> None:
    adopted, compiled = both
    assert adopted.adopted is not None
    for name, table in adopted.adopted.tables.items():
        theirs = compiled.table(name)
        assert _layout(table.Key) == _layout(theirs.Key), name
        assert _layout(table.Leaf) == _layout(theirs.Leaf), name
        assert table.max_entries == theirs.max_entries, name


def test_hash_reads_writes_and_deletes_as_bcc_does(both: tuple[Datapath, Datapath]) -> None:
    adopted, compiled = both
    mine, theirs = adopted.table("endpoints_v1"), compiled.table("endpoints_v1")
    leaf = mine.Leaf()
    leaf.identity = 77
    mine[mine.Key(9)] = leaf
    assert theirs[theirs.Key(9)].identity == 77
    assert sorted(k.value for k in mine.keys()) == sorted(k.value for k in theirs.keys())
    assert [(k.value, v.identity) for k, v in sorted(mine.items(), key=lambda kv: kv[0].value)] \
        == [(k.value, v.identity) for k, v in sorted(theirs.items(), key=lambda kv: kv[0].value)]
    assert mine.get(mine.Key(12345)) is None and mine.Key(9) in mine
    del mine[mine.Key(9)]
    with pytest.raises(KeyError):
        theirs[theirs.Key(9)]
    with pytest.raises(KeyError):
        del mine[mine.Key(9)]


def test_a_full_map_refuses_in_bccs_words(both: tuple[Datapath, Datapath]) -> None:
    """The applier tells a full map from a bug by BCC's message."""
    adopted, _ = both
    table = adopted.table("endpoints_v1")
    leaf = table.Leaf()
    for ifindex in range(1000, 1000 + table.max_entries - len(table)):
        table[table.Key(ifindex)] = leaf
    with pytest.raises(Exception, match=r"^Could not update table: Argument list too long$"):
        table[table.Key(99_999)] = leaf
    table.clear()
    assert len(table) == 0


def test_arrays_and_per_cpu_arrays_as_bcc(both: tuple[Datapath, Datapath]) -> None:
    adopted, compiled = both
    config, theirs = adopted.table("tulle_config_v1"), compiled.table("tulle_config_v1")
    config[3] = config.Leaf(12)  # int keys, like BCC's arrays
    assert theirs[3].value == 12 and len(config) == config.max_entries
    del config[3]  # an array entry is zeroed, not removed
    assert theirs[3].value == 0
    with pytest.raises(IndexError):
        config[config.max_entries]
    drops, bcc_drops = adopted.table("tulle_drops_v1"), compiled.table("tulle_drops_v1")
    mine = drops.getvalue(drops.Key(5))
    assert len(mine) == bcc_drops.total_cpu == drops.total_cpu
    assert [bytes(v) for v in mine] == [bytes(v) for v in bcc_drops.getvalue(bcc_drops.Key(5))]
    assert adopted.events_lost() == compiled.events_lost()


def test_lpm_and_lru_tables_iterate_as_bcc(both: tuple[Datapath, Datapath]) -> None:
    adopted, compiled = both
    net = ipaddress.IPv4Network("10.1.0.0/16")
    maps.write_cidr_rule(adopted, ipaddress.IPv4Address(CLIENT), 1, net, False, [])
    assert maps.read_cidr_keys(compiled) == maps.read_cidr_keys(adopted) \
        == [(ipaddress.IPv4Address(CLIENT), 1, net)]
    assert maps.read_service_slots(adopted) == maps.read_service_slots(compiled)
    assert len(adopted.table("ct_v1")) == len(compiled.table("ct_v1"))
