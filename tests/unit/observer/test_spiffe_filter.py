"""`tulle observe --from-identity/--to-identity/--identity SPIFFE_ID`: exact workload-identity
filters, client side (replay) and server side (through the observer API and the relay)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.flows.codec import envelope
from agent.flows.filters import FilterError, FlowFilter, compile_filters
from agent.flows.flagfilters import FilterBuilder
from agent.flows.flow import Endpoint, Flow
from agent.flows.store import FlowRing
from agent.observer.convert import filter_from_proto, filter_to_proto
from agent.observer.relay import Relay
from tests.unit.flows.samples import syn
from tests.unit.observer.conftest import NodeFactory
from tests.unit.observer.test_cli import run, uuids

WEB = "spiffe://cluster.local/ns/shop/sa/web"
DB = "spiffe://cluster.local/ns/data/sa/default"
OTHER_TD = "spiffe://other.example/ns/shop/sa/web"


def _flow(n: int, src: str, dst: str) -> Flow:
    return dataclasses.replace(
        syn(), uuid=f"flow-{n}", time=syn().time + n,
        source=Endpoint(namespace="shop", pod_name=f"p{n}", spiffe_id=src),
        destination=Endpoint(namespace="data", pod_name=f"q{n}", spiffe_id=dst))


FLOWS = [_flow(1, WEB, DB), _flow(2, DB, WEB), _flow(3, OTHER_TD, DB), _flow(4, "", WEB)]


def build(*flags: tuple[str, str]) -> list[FlowFilter]:
    b = FilterBuilder()
    for flag, value in flags:
        b.add(flag, value)
    allow, _ = b.build()
    return allow


def picked(*flags: tuple[str, str]) -> list[str]:
    keep = compile_filters(build(*flags))
    return [f.uuid[-1] for f in FLOWS if keep(f)]


def test_from_and_to_identity_take_spiffe_ids_and_match_exactly() -> None:
    assert build(("from-identity", WEB)) == [FlowFilter(source_spiffe_id=(WEB,))]
    assert picked(("from-identity", WEB)) == ["1"]  # not the other trust domain's "web"
    assert picked(("to-identity", WEB)) == ["2", "4"]
    assert picked(("from-identity", WEB), ("to-identity", DB)) == ["1"]
    assert picked(("from-identity", DB), ("to-identity", DB)) == []
    assert picked(("to-identity", WEB + "x")) == []


def test_identity_without_direction_matches_either_side() -> None:
    assert build(("identity", WEB)) == [FlowFilter(source_spiffe_id=(WEB,)),
                                        FlowFilter(destination_spiffe_id=(WEB,))]
    assert picked(("identity", WEB)) == ["1", "2", "4"]


def test_numbers_still_mean_datapath_identities() -> None:
    assert build(("from-identity", "world"), ("from-identity", WEB)) == [
        FlowFilter(source_identity=(2,), source_spiffe_id=(WEB,))]


@pytest.mark.parametrize(("bad", "why"), [
    ("spiffe://Cluster.local/ns/a/sa/b", "not lowercase"),
    ("SPIFFE://cluster.local/ns/a/sa/b", "scheme"),
    ("spiffe://cluster.local/ns//sa/b", "empty segment"),
    ("spiffe://cluster.local/ns/a/sa/b?x=1", "query"),
    ("web", "expected a number"),
])
def test_a_bad_identity_is_named(bad: str, why: str) -> None:
    with pytest.raises(FilterError, match="identity") as info:
        build(("to-identity", bad))
    assert why in str(info.value)


def test_the_filter_crosses_the_api() -> None:
    ff = FlowFilter(source_spiffe_id=(WEB,), destination_spiffe_id=(DB, OTHER_TD))
    assert filter_from_proto(filter_to_proto(ff)) == ff


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "flows.json"
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in FLOWS))
    return path


def test_replay_filters_and_prints_the_ids(saved: Path) -> None:
    code, out, err = run("observe", "--input-file", str(saved), "-o", "json",
                         "--from-identity", WEB, "--to-identity", DB)
    assert code == 0, err
    [line] = out.splitlines()
    tulle = json.loads(line)["flow"]["tulle"]
    assert (tulle["source_spiffe_id"], tulle["destination_spiffe_id"]) == (WEB, DB)


def test_a_bad_spiffe_id_is_a_usage_error(saved: Path) -> None:
    code, _, err = run("observe", "--input-file", str(saved), "--from-identity",
                       "spiffe://cluster.local/ns/a/sa/b/")
    assert code == 2 and "is not a SPIFFE ID" in err


def test_the_server_and_the_relay_filter(start_node: NodeFactory, tmp_path: Path) -> None:
    ring = FlowRing(100)
    ring.put_many(FLOWS)
    node = start_node("node-1", ring)
    code, out, err = run("observe", "--server", node.targets[0], "-o", "json",
                         "--to-identity", WEB)
    assert code == 0, err
    assert uuids(out) == ["2", "4"]
    with Relay([("node-1", node.targets[0])], tcp_address=None,
               unix_socket=tmp_path / "relay.sock", connect_timeout=0.5,
               status_timeout=0.5) as relay:
        code, out, err = run("observe", "--server", relay.targets[0], "-o", "json",
                             "--not", "--identity", WEB)
        assert code == 0, err
        assert uuids(out) == ["3"]
