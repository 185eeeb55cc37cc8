"""cni.runtime, the runtime side (what libcni does), against fake plugins that log their call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cni.runtime import Attachment, Chain, ChainError

ATT = Attachment("c1", "/run/netns/p", "eth0", {"K8S_POD_NAME": "web"})


def fake(bindir: Path, name: str, body: str) -> None:
    """A plugin that appends its command, env and stdin to <bindir>/log, then runs ``body``."""
    path = bindir / name
    path.write_text(
        "#!/bin/sh\n"
        "in=$(cat)\n"
        f"printf '%s\\n' \"{name} $CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME "
        f'$CNI_ARGS $in" >> {bindir}/log\n' + body + "\n"
    )
    path.chmod(0o755)


def calls(bindir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for line in (bindir / "log").read_text().splitlines():
        name, command, cid, netns, ifname, args, stdin = line.split(" ", 6)
        assert (cid, netns, ifname, args) == ("c1", "/run/netns/p", "eth0", "K8S_POD_NAME=web")
        out.append((name, command, json.loads(stdin)))
    return out


def chain(bindir: Path, *plugins: str) -> Chain:
    conflist = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": p} for p in plugins]}
    return Chain(conflist, ["/nonexistent", str(bindir)])


def test_add_runs_in_order_passing_each_result_on(tmp_path: Path) -> None:
    fake(
        tmp_path, "first", """echo '{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}'"""
    )
    fake(
        tmp_path,
        "second",
        'echo "$in" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)[\'prevResult\']))"',
    )
    result = chain(tmp_path, "first", "second").add(ATT)
    assert result == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}
    (n1, c1, conf1), (n2, c2, conf2) = calls(tmp_path)
    assert (n1, c1, n2, c2) == ("first", "ADD", "second", "ADD")
    assert conf1 == {"type": "first", "name": "net", "cniVersion": "1.0.0"}
    assert conf2["prevResult"] == result


def test_del_runs_in_reverse_with_the_cached_result(tmp_path: Path) -> None:
    fake(tmp_path, "first", "")
    fake(tmp_path, "second", "")
    chain(tmp_path, "first", "second").delete(ATT, {"cniVersion": "1.0.0"})
    assert [(n, c, conf.get("prevResult")) for n, c, conf in calls(tmp_path)] == [
        ("second", "DEL", {"cniVersion": "1.0.0"}),
        ("first", "DEL", {"cniVersion": "1.0.0"}),
    ]


def test_a_plugins_error_object_becomes_a_chain_error_and_stops_the_chain(tmp_path: Path) -> None:
    fake(
        tmp_path,
        "first",
        """echo '{"cniVersion": "1.0.0", "code": 11, "msg": "later", "details": "d"}'; exit 1""",
    )
    fake(tmp_path, "second", "")
    with pytest.raises(ChainError) as err:
        chain(tmp_path, "first", "second").check(ATT, {})
    assert (
        err.value.plugin,
        err.value.command,
        err.value.code,
        err.value.msg,
        err.value.details,
    ) == ("first", "CHECK", 11, "later", "d")
    assert [n for n, _, _ in calls(tmp_path)] == ["first"]


def test_a_plugin_that_prints_no_error_object(tmp_path: Path) -> None:
    fake(tmp_path, "first", "echo boom >&2; exit 3")
    with pytest.raises(ChainError, match="exit 3: boom"):
        chain(tmp_path, "first").add(ATT)


def test_missing_plugin_and_bad_conflists(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="plugin not found"):
        chain(tmp_path, "absent").add(ATT)
    with pytest.raises(ValueError, match="plugins"):
        Chain({"cniVersion": "1.0.0", "name": "n", "plugins": []}, [])
    with pytest.raises(ValueError, match="name"):
        Chain({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, [])
