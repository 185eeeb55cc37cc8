"""Secrets as kube-apiserver takes them: write-only stringData merged into data (and not
stored) on create, update, patch and server-side apply; data values must be base64 (Go's
decoding error, 400); keys must be config keys (422 Invalid naming data[key])."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lab.apiserver.secret_data import go_base64_error, merge_string_data
from tests.unit.lab.apiserver.conftest import Client

SECRETS = "/api/v1/namespaces/default/secrets"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def test_create_merges_string_data_into_data_and_does_not_store_it(client: Client) -> None:
    body = _secret("db", data={"user": _b64("app"), "pw": _b64("old")},
                   stringData={"pw": "new", "host": "db.local"})
    created = client.request("POST", SECRETS, body)
    assert created.status == 201, created.body
    want = {"user": _b64("app"), "pw": _b64("new"), "host": _b64("db.local")}
    assert created.body["data"] == want and "stringData" not in created.body
    got = client.get(f"{SECRETS}/db").body
    assert got["data"] == want and "stringData" not in got


def test_update_patch_and_apply_merge_string_data_too(client: Client) -> None:
    assert client.request("POST", SECRETS, _secret("db", data={"a": _b64("1")})).status == 201
    current = client.get(f"{SECRETS}/db").body
    put = client.request("PUT", f"{SECRETS}/db", {**current, "stringData": {"a": "2", "b": "x"}})
    assert put.status == 200, put.body
    assert put.body["data"] == {"a": _b64("2"), "b": _b64("x")} and "stringData" not in put.body
    patched = client.request("PATCH", f"{SECRETS}/db", {"stringData": {"c": "y"}}, ctype=MERGE)
    assert patched.status == 200, patched.body
    assert patched.body["data"]["c"] == _b64("y") and "stringData" not in patched.body
    applied = client.request("PATCH", f"{SECRETS}/tls", _secret("tls", stringData={"k": "v"}),
                             ctype=APPLY, query={"fieldManager": "ci"})
    assert applied.status in (200, 201), applied.body
    assert applied.body["data"] == {"k": _b64("v")} and "stringData" not in applied.body
    again = client.request("PATCH", f"{SECRETS}/tls", _secret("tls", stringData={"k": "w"}),
                           ctype=APPLY, query={"fieldManager": "ci"})
    assert again.status == 200, again.body
    assert again.body["data"] == {"k": _b64("w")} and "stringData" not in again.body
    assert "stringData" not in client.get(f"{SECRETS}/tls").body


def test_data_that_is_not_base64_is_a_bad_request_in_gos_words(client: Client) -> None:
    reply = client.request("POST", SECRETS, _secret("bad", data={"a": "eA==", "b": "ab!d"}))
    assert reply.status == 400 and reply.body["reason"] == "BadRequest"
    assert reply.body["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: '
        "illegal base64 data at input byte 2")
    assert client.get(f"{SECRETS}/bad").status == 404


@pytest.mark.parametrize("field", ["data", "stringData"])
def test_a_key_that_is_no_config_key_is_422_invalid_on_data(client: Client, field: str) -> None:
    value = _b64("x") if field == "data" else "x"
    reply = client.request("POST", SECRETS, _secret("bad", **{field: {"a b": value}}))
    assert reply.status == 422 and reply.body["reason"] == "Invalid", reply.body
    assert reply.body["kind"] == "Status" and reply.body["status"] == "Failure"
    details = reply.body["details"]
    assert details["kind"] == "Secret" and details["name"] == "bad"
    (cause,) = details["causes"]
    assert cause["field"] == "data[a b]" and cause["reason"] == "FieldValueInvalid"
    assert '"a b"' in cause["message"] and not cause["message"].startswith("data[")
    assert reply.body["message"].startswith('Secret "bad" is invalid: data[a b]: ')


@pytest.mark.parametrize(("text", "offset"), [
    ("", None), ("eA==", None), ("eA==\n", None), ("eHl6\r\neHl6", None), ("eHk=", None),
    ("!", 0), ("ab!d", 2), ("eA=", 3), ("eA", 0), ("e", 0), ("=AAA", 0), ("e===", 1),
    ("eA==x", 4), ("eHk=eHk=", 4), ("eHl6eA", 4), ("é", 0),
])
def test_base64_errors_are_gos(text: str, offset: int | None) -> None:
    # Offsets as Go 1.22's base64.StdEncoding.DecodeString reports them.
    error = go_base64_error(text)
    assert error == (None if offset is None else f"illegal base64 data at input byte {offset}")


def test_merge_leaves_a_malformed_string_data_for_validation() -> None:
    odd = _secret("s", stringData={"a": 1})
    assert merge_string_data(odd) is odd
    assert merge_string_data(_secret("s", stringData={})) == _secret("s")


CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize(("field", "key"), [
    ("binaryData", "../../escaped"), ("binaryData", ".."), ("binaryData", "..x"),
    ("data", ".."), ("data", "."), ("binaryData", "a/b"),
])
def test_a_config_map_key_that_names_no_plain_file_is_422(
        client: Client, field: str, key: str) -> None:
    # Each key becomes a file in a configMap volume: '..', '.' and '..x' would name the
    # volume's parent or itself (Kubernetes' IsConfigMapKey refuses them, binaryData too).
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
            field: {key: _b64("x") if field == "binaryData" else "x"}}
    reply = client.request("POST", CONFIGMAPS, body)
    assert reply.status == 422 and reply.body["reason"] == "Invalid", reply.body
    (cause,) = reply.body["details"]["causes"]
    assert cause["field"] == f"{field}[{key}]"
    assert client.get(f"{CONFIGMAPS}/bad").status == 404


def test_a_secret_key_dot_dot_is_422(client: Client) -> None:
    reply = client.request("POST", SECRETS, _secret("bad", data={"..": _b64("x")}))
    assert reply.status == 422, reply.body
    assert "must not be '..'" in reply.body["message"]
