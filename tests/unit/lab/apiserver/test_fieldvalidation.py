"""fieldValidation: Strict rejects unknown fields naming them, Warn warns, Ignore drops them."""

from __future__ import annotations

import http.client
import json

from tests.unit.lab.apiserver.conftest import Client

CMS = "/api/v1/namespaces/default/configmaps"
TYPO = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "lables": {"a": "b"}},
    "dta": {"a": "b"},
}


def test_strict_rejects_naming_every_unknown_field(client: Client) -> None:
    reply = client.request("POST", CMS, TYPO, query={"fieldValidation": "Strict"})
    assert reply.status == 400 and reply.body["reason"] == "BadRequest"
    assert 'unknown field "dta"' in reply.body["message"]
    assert 'unknown field "metadata.lables"' in reply.body["message"]
    assert client.get(f"{CMS}/c").status == 404


def _raw_post(client: Client, query: str) -> http.client.HTTPResponse:
    conn = client._conn()
    conn.request(
        "POST",
        f"{CMS}?{query}",
        body=json.dumps(TYPO),
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_warn_stores_without_the_unknown_fields_and_warns(client: Client) -> None:
    resp = _raw_post(client, "fieldValidation=Warn")
    assert resp.status == 201
    assert resp.headers.get_all("Warning") == [
        '299 - "unknown field \\"dta\\""',
        '299 - "unknown field \\"metadata.lables\\""',
    ]
    stored = client.get(f"{CMS}/c").body
    assert "dta" not in stored and "lables" not in stored["metadata"]


def test_ignore_drops_silently(client: Client) -> None:
    resp = _raw_post(client, "fieldValidation=Ignore")
    assert resp.status == 201 and resp.headers.get_all("Warning") is None
    assert "dta" not in client.get(f"{CMS}/c").body


def test_known_fields_pass_strict(client: Client) -> None:
    ok = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "b"}},
        "data": {"a": "b"},
    }
    assert client.request("POST", CMS, ok, query={"fieldValidation": "Strict"}).status == 201


def test_strict_checks_merge_patches_too(client: Client) -> None:
    client.request("POST", CMS, {"kind": "ConfigMap", "metadata": {"name": "c"}})
    reply = client.request(
        "PATCH",
        f"{CMS}/c",
        {"dta": {}},
        query={"fieldValidation": "Strict"},
        ctype="application/merge-patch+json",
    )
    assert reply.status == 400 and 'unknown field "dta"' in reply.body["message"]


def test_bad_mode_is_400(client: Client) -> None:
    assert client.request("POST", CMS, TYPO, query={"fieldValidation": "Loose"}).status == 400
