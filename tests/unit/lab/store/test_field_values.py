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
