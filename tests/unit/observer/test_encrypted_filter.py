"""`tulle observe --encrypted / --unencrypted` (Hubble 1.19's flags and FlowFilter.encrypted):
client side (replay) and server side (through the observer API and the relay)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.flows.codec import envelope
from agent.flows.filters import FilterError, FlowFilter, compile_filters
from agent.flows.flagfilters import FilterBuilder
from agent.flows.flow import IP, Flow, Verdict
from agent.flows.store import FlowRing
from agent.flows.tunnelflow import tunnel_flow, with_identities
from agent.observer.convert import filter_from_proto, filter_to_proto
from agent.observer.relay import Relay
from tests.unit.flows.samples import all_samples, syn
from tests.unit.flows.tunnelsamples import ACCEPTED, REFUSED
from tests.unit.observer.conftest import NodeFactory
from tests.unit.observer.test_cli import run, uuids


def _tunnel(n: int, event: object) -> Flow:
    return dataclasses.replace(
        with_identities(tunnel_flow(event, "node-2"), event),  # type: ignore[arg-type]
        uuid=f"flow-{n}",
    )


# 1: plaintext SYN, 2: an accepted tunnel, 3: a refused one, 4: a kernel flow of a redirected
# connection (encrypted, as the datapath marks them), 5: a flow without an IP layer
PLAIN = dataclasses.replace(syn(), uuid="flow-1")
KERNEL = dataclasses.replace(
    syn(), uuid="flow-4", time=syn().time + 4, ip=IP("10.244.1.5", "10.244.2.7", encrypted=True)
)
NO_IP = dataclasses.replace(syn(), uuid="flow-5", ip=None)
FLOWS = [PLAIN, _tunnel(2, ACCEPTED), _tunnel(3, REFUSED), KERNEL, NO_IP]


def build(*flags: tuple[str, str | None]) -> tuple[list[FlowFilter], list[FlowFilter]]:
    b = FilterBuilder()
    for flag, value in flags:
        b.add(flag, value)
    return b.build()


def picked(*flags: tuple[str, str | None]) -> list[str]:
    keep = compile_filters(*build(*flags))
    return [f.uuid[-1] for f in FLOWS if keep(f)]


def test_the_flags_fill_hubbles_encrypted_field() -> None:
    assert build(("encrypted", "true")) == ([FlowFilter(encrypted=(True,))], [])
    assert build(("unencrypted", "true")) == ([FlowFilter(encrypted=(False,))], [])
    assert build(("encrypted", "false")) == ([FlowFilter(encrypted=(False,))], [])
    assert build(("unencrypted", "False")) == ([FlowFilter(encrypted=(True,))], [])


def test_include_exclude_and_either() -> None:
    assert picked(("encrypted", "true")) == ["2", "3", "4"]
    assert picked(("unencrypted", "true")) == ["1", "5"]  # no IP layer: not encrypted
    assert picked(("not", None), ("encrypted", "true")) == ["1", "5"]
    assert picked(("not", None), ("unencrypted", "true")) == ["2", "3", "4"]
    assert picked(("encrypted", "1"), ("unencrypted", "t")) == ["1", "2", "3", "4", "5"]


def test_combined_with_other_filters_all_must_match() -> None:
    assert picked(("encrypted", "true"), ("verdict", "DROPPED")) == ["3"]
    assert picked(("encrypted", "true"), ("type", "trace")) == ["2", "4"]
    assert picked(("unencrypted", "true"), ("to-port", "5432")) == []
    assert picked(
        ("encrypted", "true"), ("not", None), ("drop-reason-desc", "MTLS_WRONG_IDENTITY")
    ) == ["2", "4"]
    assert picked(("encrypted", "true"), ("type", "drop:MTLS_WRONG_IDENTITY")) == ["3"]


@pytest.mark.parametrize("flag", ["encrypted", "unencrypted"])
def test_a_bad_value_is_named(flag: str) -> None:
    with pytest.raises(FilterError, match=f"{flag}: 'maybe', expected true or false"):
        build((flag, "maybe"))


def test_the_filter_crosses_the_api() -> None:
    for ff in (
        FlowFilter(encrypted=(True,)),
        FlowFilter(encrypted=(False,), verdict=("DROPPED",)),
        FlowFilter(),
    ):
        assert filter_from_proto(filter_to_proto(ff)) == ff
    assert list(filter_to_proto(FlowFilter(encrypted=(False,))).encrypted) == [False]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "flows.json"
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in FLOWS))
    return path


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (("--encrypted",), ["2", "3", "4"]),
        (("--unencrypted",), ["1", "5"]),
        (("--encrypted=false",), ["1", "5"]),
        (("--encrypted", "false"), ["1", "5"]),
        (("--not", "--encrypted"), ["1", "5"]),
        (("--encrypted", "--verdict", "FORWARDED"), ["2", "4"]),
        (("--verdict", "DROPPED", "--unencrypted"), []),
        (("--encrypted", "--unencrypted"), ["1", "2", "3", "4", "5"]),
    ],
)
def test_replay_filters(saved: Path, args: tuple[str, ...], want: list[str]) -> None:
    code, out, err = run("observe", "--input-file", str(saved), "-o", "json", *args)
    assert code == 0, err
    assert uuids(out) == want


def test_a_bad_value_is_a_usage_error(saved: Path) -> None:
    code, _, err = run("observe", "--input-file", str(saved), "--encrypted=sometimes")
    assert code == 2 and "expected true or false" in err


def test_json_output_carries_ip_encrypted(saved: Path) -> None:
    code, out, err = run("observe", "--input-file", str(saved), "-o", "json", "--encrypted")
    assert code == 0, err
    assert all(json.loads(line)["flow"]["IP"]["encrypted"] is True for line in out.splitlines())
    code, out, err = run("observe", "--input-file", str(saved), "-o", "json", "--unencrypted")
    assert all(
        "encrypted" not in json.loads(line)["flow"].get("IP", {}) for line in out.splitlines()
    )


def test_the_server_and_the_relay_filter(start_node: NodeFactory, tmp_path: Path) -> None:
    ring = FlowRing(100)
    ring.put_many(FLOWS)
    node = start_node("node-2", ring)
    code, out, err = run(
        "observe", "--server", node.targets[0], "-o", "json", "--encrypted", "--verdict", "DROPPED"
    )
    assert code == 0, err
    assert uuids(out) == ["3"]
    with Relay(
        [("node-2", node.targets[0])],
        tcp_address=None,
        unix_socket=tmp_path / "relay.sock",
        connect_timeout=0.5,
        status_timeout=0.5,
    ) as relay:
        code, out, err = run("observe", "--server", relay.targets[0], "-o", "json", "--unencrypted")
        assert code == 0, err
        assert uuids(out) == ["1", "5"]
        code, out, err = run(
            "observe", "--server", relay.targets[0], "-o", "json", "--not", "--unencrypted"
        )
        assert sorted(uuids(out)) == ["2", "3", "4"]  # the relay merges in time order


def test_the_samples_are_not_encrypted() -> None:
    """The golden flows every other test prints stay unmarked."""
    assert not any(f.ip is not None and f.ip.encrypted for f in all_samples())
    assert FLOWS[2].verdict == Verdict.DROPPED
