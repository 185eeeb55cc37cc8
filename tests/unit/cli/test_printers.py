"""Rendering the server's Table responses as kubectl does (pure)."""

from __future__ import annotations

from agent.cli.printers import as_list, describe, table

TABLE = {
    "kind": "Table",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "priority": 0},
        {"name": "Ready", "type": "string", "priority": 0},
        {"name": "Restarts", "type": "integer", "priority": 0},
        {"name": "IP", "type": "string", "priority": 1},
    ],
    "rows": [
        {"cells": ["web-1", "1/1", 0, "10.244.1.2"],
         "object": {"metadata": {"name": "web-1", "namespace": "shop"}}},
        {"cells": ["db", "0/1", 12, None], "object": {"metadata": {"name": "db", "namespace": "x"}}},
    ],
}


def test_priority_columns_only_when_wide_and_headers_upper_cased():
    assert table([TABLE], wide=False, with_namespace=False).splitlines() == [
        "NAME    READY   RESTARTS",
        "web-1   1/1     0",
        "db      0/1     12",
    ]
    wide = table([TABLE], wide=True, with_namespace=False).splitlines()
    assert wide[0].split() == ["NAME", "READY", "RESTARTS", "IP"]
    assert wide[2].split() == ["db", "0/1", "12", "<none>"]


def test_the_namespace_column_comes_from_each_rows_object():
    lines = table([TABLE], wide=False, with_namespace=True).splitlines()
    assert [line.split()[0] for line in lines] == ["NAMESPACE", "shop", "x"]


def test_several_tables_share_one_header():
    lines = table([TABLE, TABLE], wide=False, with_namespace=False).splitlines()
    assert len(lines) == 5 and lines[0].startswith("NAME")


def test_list_items_get_their_kind_back():
    listed = as_list([{"metadata": {"name": "a"}}], "apps/v1", "Deployment")
    assert listed["items"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}
    ]


def test_describe_lists_listener_and_parent_conditions():
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "shop"},
        "status": {
            "conditions": [{"type": "Programmed", "status": "False", "reason": "Invalid",
                            "message": "no address"}],
            "listeners": [{"name": "http", "conditions": [{"type": "Accepted", "status": "True"}]}],
        },
    }
    text = describe(gateway, namespaced=True)
    assert "  Programmed=False (Invalid): no address" in text
    assert "  listener http: Accepted=True" in text
