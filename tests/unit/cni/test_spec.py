"""The CNI protocol's inputs: every bad environment and configuration gets the SPEC's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni.plugin import run
from cni.spec import CniError, parse_cni_args, parse_env, parse_prev_result, pod_ips

from .helpers import NETNS, PREV_RESULT, Peers, Waiter, conf, env, error


def code_of(command: str, stdin: bytes, **over: str) -> dict:
    out, status = run(env(command, **over), lambda: stdin, Peers(), Waiter())
    assert status == 1, out
    return error(out)


# -- environment: code 4 ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "unset"),
    [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("ADD", "CNI_PATH"),
        ("CHECK", "CNI_NETNS"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
    ],
)
def test_missing_env_is_code_4_and_named(tmp_path: Path, command: str, unset: str) -> None:
    doc = code_of(command, conf(tmp_path), **{unset: "<unset>"})
    assert doc["code"] == 4 and unset in doc["msg"]


@pytest.mark.parametrize(
    ("over", "word"),
    [
        ({"CNI_COMMAND": "<unset>"}, "CNI_COMMAND"),
        ({"CNI_COMMAND": "UPDATE"}, "unknown CNI_COMMAND"),
        ({"CNI_CONTAINERID": "-starts-with-dash"}, "CNI_CONTAINERID"),
        ({"CNI_CONTAINERID": "has/slash"}, "CNI_CONTAINERID"),
        ({"CNI_IFNAME": "eth0:1"}, "CNI_IFNAME"),
        ({"CNI_IFNAME": "a-name-far-too-long"}, "CNI_IFNAME"),
        ({"CNI_IFNAME": ".."}, "CNI_IFNAME"),
        ({"CNI_IFNAME": "eth 0"}, "CNI_IFNAME"),
        ({"CNI_ARGS": "K8S_POD_NAME"}, "CNI_ARGS"),
    ],
)
def test_invalid_env_is_code_4(tmp_path: Path, over: dict[str, str], word: str) -> None:
    doc = code_of("ADD", conf(tmp_path), **over)
    assert doc["code"] == 4 and word in doc["msg"]


def test_cni_args_and_path_parse() -> None:
    assert parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web-1;;X=a=b") == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAME": "web-1",
        "X": "a=b",
    }
    inv = parse_env(env("ADD", CNI_PATH="/opt/cni/bin::/usr/lib/cni"))
    assert inv.path == ("/opt/cni/bin", "/usr/lib/cni") and inv.args["K8S_POD_UID"] == "7c1d-uid"


# -- configuration: codes 6, 1, 7, 2 ---------------------------------------------------------
@pytest.mark.parametrize("stdin", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_undecodable_config_is_code_6(stdin: bytes) -> None:
    assert code_of("ADD", stdin)["code"] == 6


@pytest.mark.parametrize("version", ["<unset>", "0.2.0", "2.0.0", 1.0])
def test_unsupported_version_is_code_1(tmp_path: Path, version: object) -> None:
    doc = code_of("ADD", conf(tmp_path, version=version))  # type: ignore[arg-type]
    assert doc["code"] == 1 and "1.1.0" in doc["details"]
    assert doc["cniVersion"] == "1.1.0"  # the error speaks a version the plugin knows


def test_del_with_a_wrong_version_is_code_1_too(tmp_path: Path) -> None:
    assert code_of("DEL", conf(tmp_path, version="0.1.0"))["code"] == 1


@pytest.mark.parametrize(
    "over",
    [
        {"name": "<unset>"},
        {"name": ""},
        {"name": "bad/name"},
        {"type": "<unset>"},
        {"stateDir": 7},
        {"attachTimeout": -1},
        {"attachTimeout": "10s"},
        {"attachTimeout": True},
        {"attachTimeout": 3600},
        {"prevResult": []},
        {"prevResult": {"interfaces": {}, "ips": []}},
        {"prevResult": {"interfaces": [{"mac": "x"}], "ips": []}},
        {"prevResult": {"interfaces": [], "ips": [{"address": "not-an-ip"}]}},
        {"prevResult": {"interfaces": [], "ips": [{"address": "10.0.0.1/24", "interface": 3}]}},
    ],
)
def test_invalid_config_is_code_7(tmp_path: Path, over: dict) -> None:
    assert code_of("ADD", conf(tmp_path, **over))["code"] == 7


def test_unsupported_chaining_mode_is_code_2_naming_key_and_value(tmp_path: Path) -> None:
    doc = code_of("ADD", conf(tmp_path, chainingMode="aws-cni"))
    assert doc["code"] == 2 and "chainingMode" in doc["msg"] and "aws-cni" in doc["msg"]


def test_the_error_object_speaks_the_configs_version(tmp_path: Path) -> None:
    doc = code_of("ADD", conf(tmp_path, version="0.4.0", prev=False))
    assert doc["cniVersion"] == "0.4.0" and doc["code"] == 7


# -- prevResult -------------------------------------------------------------------------------
def test_pod_ips_are_those_of_the_pods_interface() -> None:
    prev = dict(PREV_RESULT)
    prev["ips"] = [
        {"address": "10.244.1.5/24", "interface": 1},
        {"address": "fd00::5/64", "interface": 1},
        {"address": "10.9.9.9/32", "interface": 0},  # the host veth's, not the pod's
        {"address": "10.7.0.1/16"},  # names no interface: 0.3.x IPAM style, kept
    ]
    parsed = parse_prev_result(prev)
    assert pod_ips(parsed, "eth0", NETNS) == ("10.244.1.5/24", "fd00::5/64", "10.7.0.1/16")
    assert pod_ips(parsed, "eth0", "/var/run/netns/another") == ("10.7.0.1/16",)


def test_a_bad_prev_result_raises_code_7() -> None:
    with pytest.raises(CniError) as err:
        parse_prev_result(
            json.loads('{"interfaces": [], "ips": [{"address": "10.0.0.1/24", "interface": true}]}')
        )
    assert err.value.code == 7
