"""Store.field_values: one JSON field per object of a kind, read without decoding objects."""

from pathlib import Path

from lab.store import Store


def _svc(name: str, ip: str | None) -> dict:
    spec: dict = {"ports": [{"port": 80}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_field_values_reads_one_field_per_object_of_the_kind(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.apply_many([
            _svc("a", "10.96.0.10"),
            _svc("b", None),
            _svc("headless", "None"),
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "a", "namespace": "default"},
             "data": {"spec": "not a service"}},
        ])
        values = sorted(store.field_values("Service", "$.spec.clusterIP"))
    assert values == [
        ("default", "a", "10.96.0.10"),
        ("default", "b", None),
        ("default", "headless", "None"),
    ]


def test_holders_finds_an_address_through_its_index(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.apply_many(
            [_svc(f"s{i}", f"10.96.0.{i + 1}") for i in range(50)] + [_svc("twin", "10.96.0.7")]
        )
        assert sorted(store.holders("Service", "$.spec.clusterIP", "10.96.0.7")) == [
            ("default", "s6"),
            ("default", "twin"),
        ]
        assert store.holders("Service", "$.spec.clusterIP", "10.96.1.1") == []
        plan = (
            store._conn()
            .execute(
                "EXPLAIN QUERY PLAN SELECT namespace, name FROM objects WHERE kind = 'Service'"
                " AND json_extract(body, '$.spec.clusterIP') = ?",
                ("10.96.0.7",),
            )
            .fetchall()
        )
    assert any("objects_service_cluster_ip" in str(row) for row in plan), plan


def test_holders_refuses_a_field_without_an_index(tmp_path: Path) -> None:
    import pytest

    with Store(tmp_path / "s.db") as store, pytest.raises(ValueError, match="no index"):
        store.holders("Service", "$.spec.type", "ClusterIP")
