"""The API server's --service-node-port-range (lab/apiserver/node_ports.py), as
kube-apiserver's: its forms, its refusals, allocation and checks inside it, and `tulle lab up
--service-node-port-range` handing it to the API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.apiserver import node_ports
from lab.apiserver.model_admission import AdmissionError, admit
from lab.apiserver.node_ports import NODE_PORT_RANGE, parse_port_range
from lab.store import Store


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30000-32767", range(30000, 32768)), ("20000+12767", range(20000, 32768)),
     ("31000", range(31000, 31001)), (" 20000-32767 ", range(20000, 32768))],
)
def test_kube_apiservers_forms(text: str, expected: range) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "30000-", "-5", "32767-30000", "0-10", "1-70000",
                                  "20000+x"])
def test_bad_ranges_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="invalid port range"):
        parse_port_range(text)


@pytest.fixture
def narrow() -> Iterator[None]:
    node_ports.configure_range(range(20000, 20002))
    try:
        yield
    finally:
        node_ports.configure_range(NODE_PORT_RANGE)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db") as s:
        s.apply_many([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
        yield s


def svc(name: str, node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "http", "port": 80}
    if node_port is not None:
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "NodePort", "ports": [port]}}


def test_the_configured_range_is_allocated_from_and_checked(narrow: None, store: Store) -> None:
    admitted = admit(store, [("a", svc("a")), ("b", svc("b"))])
    assert sorted(o["spec"]["ports"][0]["nodePort"] for o in admitted) == [20000, 20001]
    store.apply_many(admitted)
    with pytest.raises(RuntimeError, match="node port range 20000-20001 is full"):
        admit(store, [("c", svc("c"))])
    with pytest.raises(AdmissionError, match="The range of valid ports is 20000-20001"):
        admit(store, [("d", svc("d", 30000))])


def test_lab_up_hands_the_range_to_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.lab import lab
    from lab import lifecycle

    seen: list[dict[str, Any]] = []

    def up(name: str, nodes: int, progress: Any, **options: Any) -> Any:
        seen.append(options)
        return lifecycle.plan_lab(name, nodes)

    monkeypatch.setattr(lifecycle, "up", up)
    out = CliRunner().invoke(lab, ["up", "--name", "unitlab", "--service-node-port-range",
                                   "20000-32767"])
    assert out.exit_code == 0, out.output
    assert seen[0]["node_port_range"] == "20000-32767"
    bad = CliRunner().invoke(lab, ["up", "--name", "unitlab", "--service-node-port-range", "5-2"])
    assert bad.exit_code == 2 and "invalid port range" in bad.output and len(seen) == 1


def test_the_api_server_gets_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lab import controlplane
    from lab.state import LabPaths
    from lab.topology import plan_lab

    argvs: list[list[str]] = []

    def spawn(role: str, argv: list[str], **_: Any) -> Any:
        argvs.append(argv)
        raise RuntimeError("stop after spawning")  # the rest needs a running server

    monkeypatch.setattr(controlplane.procs, "spawn", spawn)
    monkeypatch.setattr(controlplane, "apiserver_dir", lambda paths: tmp_path)
    with pytest.raises(RuntimeError, match="stop after spawning"):
        controlplane.start_apiserver(LabPaths.for_lab("unitlab"), plan_lab("unitlab", 1),
                                     lambda _m: None, {}, "20000-32767")
    (argv,) = argvs
    assert argv[argv.index("--service-node-port-range") + 1] == "20000-32767"


def test_the_api_server_refuses_a_bad_range(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from lab.apiserver.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--store", str(tmp_path / "s.db"), "--state-dir", str(tmp_path),
              "--service-node-port-range", "40000-30000"])
    assert exit_.value.code == 2
    assert "--service-node-port-range: invalid port range" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_taken_ports_are_scanned_once_then_followed_through_the_event_log(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan per write made N NodePort Services cost O(N²); after the first scan, creates,
    updates and deletes reach the index as events."""
    scans: list[str] = []
    real = Store.field_values

    def counted(self: Store, kind: str, json_path: str) -> list[tuple[str, str, Any]]:
        scans.append(json_path)
        return real(self, kind, json_path)

    monkeypatch.setattr(Store, "field_values", counted)
    for name, port in (("a", 31000), ("b", 31001), ("c", 31002)):
        store.apply_many(admit(store, [(name, svc(name, port))]))
    first = len(scans)
    store.apply_many(admit(store, [("b", svc("b", 31005))]))  # b moves: 31001 is free again
    store.delete("Service", "default", "c")  # c goes: 31002 is free again
    for name, port in (("d", 31001), ("e", 31002)):
        store.apply_many(admit(store, [(name, svc(name, port))]))
    assert len(scans) == first == 2  # the ports and the health-check ports, once
    with pytest.raises(AdmissionError, match="31005: provided port is already allocated"):
        admit(store, [("f", svc("f", 31005))])


def test_a_compacted_event_log_means_a_rescan(store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.store import Expired

    store.apply_many(admit(store, [("a", svc("a", 31000))]))
    store.apply_many(admit(store, [("b", svc("b", 31001))]))

    def expired(*_: Any, **__: Any) -> Any:
        raise Expired(0, 10)

    monkeypatch.setattr(Store, "events_since", expired)
    with pytest.raises(AdmissionError, match="31001: provided port is already allocated"):
        admit(store, [("c", svc("c", 31001))])
