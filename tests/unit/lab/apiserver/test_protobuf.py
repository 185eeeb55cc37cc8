"""Protobuf request bodies from kubectl 1.32+'s typed commands."""

from __future__ import annotations

import pytest

from lab.apiserver.protobuf import ProtobufError, decode

# What kubectl 1.32 sent for `kubectl create namespace default` (captured with -v=9).
KUBECTL_132_CREATE_NS = bytes.fromhex(
    "6b387300 0a0f0a02 76311209 4e616d65 73706163 65121f0a 170a0764 65666175"
    "6c741200 1a002200 2a003200 38004200 12001a02 0a001a00 2200".replace(" ", "")
)


def test_decodes_kubectl_create_namespace() -> None:
    assert decode(KUBECTL_132_CREATE_NS) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default"},
    }


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def _envelope(kind: bytes, raw: bytes) -> bytes:
    return b"k8s\x00" + _field(1, _field(1, b"v1") + _field(2, kind)) + _field(2, raw)


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


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",  # JSON, not protobuf
        KUBECTL_132_CREATE_NS[:20],  # truncated
        b"k8s\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # runaway varint
        _envelope(b"Deployment", b""),  # a kind whose fields are not described here
    ],
)
def test_malformed_or_unsupported_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        decode(body)
