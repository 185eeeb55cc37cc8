"""lab.cni_runtime with fake plugins (scripts that log each call and answer as the spec says):
the conflist, chaining, error propagation, the result cache and DEL's idempotence."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.cni_runtime import (
    CNI_ATTACH_TIMEOUT,
    NETWORK,
    LabCni,
    PodKey,
    SandboxError,
    conflist,
    ipam_dir,
    mode_error,
    sandbox_from,
    tulle_state_dir,
)
from lab.state import LabPaths
from lab.topology import plan_lab

REPO = Path(__file__).resolve().parents[3]

# One script plays every plugin (its config's "type" says which): it logs the call, fails an
# ADD when <dir>/<type>.fail exists (its text is the message), and answers ADD like ptp
# (an address from the range start) or like tulle-cni (records the pod, passes prevResult on).
FAKE = """#!{python}
import json, os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from cni import store
from cni.record import EndpointRecord, PodRef
here = Path(__file__).resolve().parent
conf = json.load(sys.stdin)
cmd = os.environ["CNI_COMMAND"]
with open(here / "calls.log", "a") as log:
    log.write(json.dumps({{"plugin": conf["type"], "cmd": cmd, "conf": conf,
                          "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}}})
              + "\\n")
fail = here / (conf["type"] + ".fail")
if cmd == "ADD" and fail.exists():
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 7, "msg": fail.read_text(),
                      "details": "from the fake"}}))
    sys.exit(1)
if cmd != "ADD":
    sys.exit(0)
if conf["type"] == "ptp":
    rng = conf["ipam"]["ranges"][0][0]
    result = {{"cniVersion": conf["cniVersion"],
              "interfaces": [{{"name": "vethfake0"}},
                             {{"name": "eth0", "sandbox": os.environ["CNI_NETNS"]}}],
              "ips": [{{"address": rng["rangeStart"] + "/24", "gateway": rng["gateway"],
                       "interface": 1}}]}}
else:
    prev = conf["prevResult"]
    args = dict(kv.split("=", 1) for kv in os.environ["CNI_ARGS"].split(";"))
    store.write_record(Path(conf["stateDir"]), EndpointRecord(
        conf["name"], os.environ["CNI_CONTAINERID"], os.environ["CNI_IFNAME"],
        os.environ["CNI_NETNS"],
        PodRef(args["K8S_POD_NAMESPACE"], args["K8S_POD_NAME"], args["K8S_POD_UID"]),
        tuple(ip["address"] for ip in prev["ips"]), prev["interfaces"][0]["name"], 7))
    result = prev
print(json.dumps(result))
"""

POD = PodKey("shop", "web-1", "0f5c2d4e-1111-2222-3333-444455556666")


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    for plugin in ("ptp", "tulle-cni"):
        script = bindir / plugin
        script.write_text(FAKE.format(python=sys.executable, repo=str(REPO)))
        script.chmod(0o755)
    return bindir


@pytest.fixture
def runtime(tmp_path: Path, fakes: Path) -> LabCni:
    paths = LabPaths("t", tmp_path / "state")
    paths.make_dirs()
    return LabCni(plan_lab("t", 2), paths, cni_path=(fakes,), in_node=False)


def calls(fakes: Path) -> list[dict[str, Any]]:
    log = fakes / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_conflist_is_ptp_with_host_local_on_the_node_cidr_then_tulle(tmp_path: Path) -> None:
    paths = LabPaths("t", tmp_path)
    node = plan_lab("t", 2).nodes[1]
    conf = conflist(node, paths)
    assert (conf["cniVersion"], conf["name"]) == ("1.0.0", NETWORK)
    ptp, tulle = conf["plugins"]
    assert ptp["type"] == "ptp" and ptp["ipam"]["type"] == "host-local"
    [[rng]] = ptp["ipam"]["ranges"]
    # node2's /24, without its gateway (.1) or its waypoint address (.254)
    assert rng == {"subnet": "10.244.2.0/24", "rangeStart": "10.244.2.2",
                   "rangeEnd": "10.244.2.253", "gateway": "10.244.2.1"}
    assert ptp["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    # every plugin's state lives under the lab's state dir, which `lab down` removes
    assert ptp["ipam"]["dataDir"] == str(ipam_dir(paths, "node2"))
    assert str(ipam_dir(paths, "node2")).startswith(str(tmp_path))
    assert tulle == {"type": "tulle-cni", "stateDir": str(tulle_state_dir(paths, "node2")),
                     "attachTimeout": CNI_ATTACH_TIMEOUT}
    # the node's /var/run/tulle/cni: where its agent (spawned or a DaemonSet pod) reads
    assert tulle_state_dir(paths, "node2") == (paths.root / "nodes" / "node2" / "root" / "run"
                                               / "tulle" / "cni")
    # a lab without the datapath has no agent to wait for
    assert conflist(node, paths, 0)["plugins"][1]["attachTimeout"] == 0


def test_add_chains_prev_results_and_returns_ip_and_host_veth(runtime: LabCni,
                                                               fakes: Path) -> None:
    node = runtime.plan.nodes[0]
    sandbox = runtime.add(node, "tulle-t-pod-x", POD)
    assert sandbox.ip == ipaddress.IPv4Address("10.244.1.2")
    assert sandbox.host_veth == "vethfake0"  # from tulle-cni's record, not a name we chose
    ptp, tulle = calls(fakes)
    assert (ptp["plugin"], ptp["cmd"], tulle["plugin"], tulle["cmd"]) == (
        "ptp", "ADD", "tulle-cni", "ADD")
    assert "prevResult" not in ptp["conf"]
    assert tulle["conf"]["prevResult"]["ips"][0]["address"] == "10.244.1.2/24"
    for call in (ptp, tulle):
        assert call["conf"]["name"] == NETWORK and call["conf"]["cniVersion"] == "1.0.0"
        env = call["env"]
        assert env["CNI_CONTAINERID"] == POD.uid and env["CNI_IFNAME"] == "eth0"
        assert env["CNI_NETNS"] == "/run/netns/tulle-t-pod-x"
        assert "K8S_POD_NAMESPACE=shop" in env["CNI_ARGS"].split(";")
        assert str(fakes) in env["CNI_PATH"].split(":")


def test_a_failing_plugin_raises_with_its_error_and_is_undone_by_del(runtime: LabCni,
                                                                     fakes: Path) -> None:
    (fakes / "tulle-cni.fail").write_text("agent not there")
    with pytest.raises(SandboxError) as err:
        runtime.add(runtime.plan.nodes[0], "tulle-t-pod-x", POD)
    assert "tulle-cni ADD: [7] agent not there" in str(err.value)
    assert "node1" in str(err.value)
    # ADD ptp, ADD tulle-cni (failed), then DEL in reverse order without a prevResult
    assert [(c["plugin"], c["cmd"]) for c in calls(fakes)] == [
        ("ptp", "ADD"), ("tulle-cni", "ADD"), ("tulle-cni", "DEL"), ("ptp", "DEL")]
    assert all("prevResult" not in c["conf"] for c in calls(fakes)[2:])


def test_del_uses_the_cached_result_and_is_idempotent(runtime: LabCni, fakes: Path) -> None:
    node = runtime.plan.nodes[0]
    runtime.add(node, "tulle-t-pod-x", POD)
    runtime.delete(node, "tulle-t-pod-x", POD)
    runtime.delete(node, "tulle-t-pod-x", POD)  # again: still succeeds, nothing cached now
    dels = [c for c in calls(fakes) if c["cmd"] == "DEL"]
    assert [c["plugin"] for c in dels] == ["tulle-cni", "ptp", "tulle-cni", "ptp"]
    assert dels[0]["conf"]["prevResult"]["ips"][0]["address"] == "10.244.1.2/24"
    assert "prevResult" not in dels[2]["conf"]


def test_check_runs_every_plugin_with_the_cached_result(runtime: LabCni, fakes: Path) -> None:
    node = runtime.plan.nodes[0]
    with pytest.raises(SandboxError, match="no ADD result"):
        runtime.check(node, "tulle-t-pod-x", POD)
    runtime.add(node, "tulle-t-pod-x", POD)
    runtime.check(node, "tulle-t-pod-x", POD)
    checks = [c for c in calls(fakes) if c["cmd"] == "CHECK"]
    assert [c["plugin"] for c in checks] == ["ptp", "tulle-cni"]
    assert all(c["conf"]["prevResult"]["ips"] for c in checks)


def test_a_sandbox_left_by_a_crashed_controller_is_deleted_before_add(runtime: LabCni,
                                                                      fakes: Path) -> None:
    node = runtime.plan.nodes[0]
    runtime.add(node, "tulle-t-pod-x", POD)
    runtime.add(node, "tulle-t-pod-x", POD)  # the kubelet restarted: the cache is still there
    assert [(c["plugin"], c["cmd"]) for c in calls(fakes)][2:] == [
        ("tulle-cni", "DEL"), ("ptp", "DEL"), ("ptp", "ADD"), ("tulle-cni", "ADD")]


def test_a_result_without_ipv4_is_a_clear_error() -> None:
    with pytest.raises(SandboxError, match="no IPv4 address"):
        sandbox_from({"ips": [{"address": "fd00::2/64"}]}, "veth0")
    assert sandbox_from({"ips": [{"address": "10.0.0.5/24"}]}, "veth0").ip == (
        ipaddress.IPv4Address("10.0.0.5"))


def test_mode_errors_name_the_fix(tmp_path: Path, fakes: Path) -> None:
    assert "use one of builtin, chain" in (mode_error("bridge") or "")
    assert mode_error("builtin", (tmp_path,)) is None
    missing = mode_error("chain", (tmp_path,)) or ""
    assert "ptp, host-local" in missing and "scripts/setup.sh" in missing
    (fakes / "host-local").write_text("")
    assert mode_error("chain", (fakes,)) is None
