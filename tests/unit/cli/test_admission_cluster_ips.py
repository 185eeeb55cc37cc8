"""ClusterIP admission through the store's index: one lookup per address, whatever the number
of Services (no list or scan of them per write), with the same answers as before: a taken
address is refused, a Service keeps its own, a batch never hands one address out twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.apiserver.model_admission import AdmissionError, admit
from lab.store import Store


def svc(name: str, ip: str | None = None, ns: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80, "targetPort": 8080}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "s.db") as s:
        s.apply_many([namespace("default")])
        yield s


def stored_ip(store: Store, name: str) -> str:
    return store.get("Service", "default", name)["spec"]["clusterIP"]


def test_admitting_a_service_lists_no_services(store: Store, monkeypatch: Any) -> None:
    store.apply_many([svc(f"s{i}", f"10.96.7.{i + 1}") for i in range(200)])

    real_list = Store.list

    def no_service_list(self: Store, kind: Any = None, *args: Any, **kwargs: Any) -> Any:
        assert kind not in ("Service", None), "admission listed every Service"
        return real_list(self, kind, *args, **kwargs)

    def no_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("admission read a field of every Service")

    monkeypatch.setattr(Store, "list", no_service_list)
    monkeypatch.setattr(Store, "field_values", no_scan)
    (new,) = admit(store, [("request", svc("new"))])
    taken = {f"10.96.7.{i + 1}" for i in range(200)}
    assert new["spec"]["clusterIP"] not in taken
    with pytest.raises(AdmissionError, match="10.96.7.5 is already allocated"):
        admit(store, [("request", svc("thief", "10.96.7.5"))])


def test_a_service_keeps_and_may_name_its_own_address(store: Store) -> None:
    (first,) = admit(store, [("request", svc("web"))])
    store.apply_many([first])
    ip = stored_ip(store, "web")
    (again,) = admit(store, [("request", svc("web"))])
    assert again["spec"]["clusterIP"] == ip
    (named,) = admit(store, [("request", svc("web", ip))])
    assert named["spec"]["clusterIPs"] == [ip]
    with pytest.raises(AdmissionError, match="field is immutable"):
        admit(store, [("request", svc("web", "10.96.200.200"))])


def test_one_batch_never_hands_out_an_address_twice(store: Store) -> None:
    with pytest.raises(AdmissionError, match="10.96.3.3 is already allocated"):
        admit(store, [("a", svc("a", "10.96.3.3")), ("b", svc("b", "10.96.3.3"))])
    admitted = admit(store, [(f"s{i}", svc(f"s{i}")) for i in range(50)])
    ips = [o["spec"]["clusterIP"] for o in admitted]
    assert len(set(ips)) == 50


def test_a_missing_namespace_is_still_named(store: Store) -> None:
    with pytest.raises(AdmissionError, match="namespace 'nope' not found"):
        admit(store, [("request", svc("web", ns="nope"))])
    admitted = admit(store, [("ns", namespace("shop")), ("svc", svc("web", ns="shop"))])
    assert admitted[1]["metadata"]["namespace"] == "shop"


# A small address pool, so that wanted addresses collide often.
POOL = [f"10.96.9.{i}" for i in range(1, 6)]
WRITES = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from([None, *POOL])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(writes=WRITES)
def test_addresses_stay_unique_and_stable_over_any_writes(
    tmp_path_factory: Any, writes: list[tuple[str, str | None]]
) -> None:
    with Store(tmp_path_factory.mktemp("ips") / "s.db") as store:
        store.apply_many([namespace("default")])
        held: dict[str, str] = {}  # the model: Service -> its address
        for name, wanted in writes:
            taken_by_other = wanted is not None and any(
                ip == wanted and other != name for other, ip in held.items()
            )
            moves = wanted is not None and name in held and held[name] != wanted
            try:
                (obj,) = admit(store, [("request", svc(name, wanted))])
            except AdmissionError:
                assert taken_by_other or moves
                continue
            assert not taken_by_other and not moves
            ip = obj["spec"]["clusterIP"]
            assert ip not in {v for k, v in held.items() if k != name}
            assert held.get(name, ip) == ip
            held[name] = ip
            store.apply_many([obj])


def test_an_external_name_service_gets_no_cluster_ip(store: Store) -> None:
    ext = svc("ext")
    ext["spec"] = {"type": "ExternalName", "externalName": "api.example.com"}
    (admitted,) = admit(store, [("request", ext)])
    assert "clusterIP" not in admitted["spec"]
    assert admitted["spec"]["externalName"] == "api.example.com"
