"""agent.kube.compact: what an informer keeps of each object."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.kube.compact import compact


def endpoint(ip: str, conditions: Any, node: str = "node1") -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions, "nodeName": node, "zone": "z1"}


def test_equal_conditions_are_one_shared_dict_and_nothing_else_changes() -> None:
    ready = {"ready": True, "serving": True, "terminating": False}
    obj = {"kind": "EndpointSlice", "metadata": {"name": "s", "managedFields": [{}]},
           "endpoints": [endpoint(f"10.0.0.{i}", dict(ready)) for i in range(3)]
           + [endpoint("10.0.0.9", {"ready": False})]}
    expected = copy.deepcopy(obj)
    del expected["metadata"]["managedFields"]
    compact("EndpointSlice", obj)
    assert obj == expected
    first, second, third, other = (e["conditions"] for e in obj["endpoints"])
    assert first is second is third and other is not first


def test_node_names_are_interned() -> None:
    names = ["".join(["node", str(i)]) for i in (7, 7)]  # equal, built apart
    assert names[0] is not names[1]
    obj = {"kind": "EndpointSlice", "metadata": {"name": "s"},
           "endpoints": [endpoint("10.0.0.1", {}, names[0]), endpoint("10.0.0.2", {}, names[1])]}
    compact("EndpointSlice", obj)
    assert obj["endpoints"][0]["nodeName"] is obj["endpoints"][1]["nodeName"]


def test_target_ref_kind_and_namespace_are_interned() -> None:
    def built(text: str) -> str:
        return "".join(list(text))  # equal, a new object each time

    obj = {"kind": "EndpointSlice", "metadata": {"name": "s"},
           "endpoints": [{**endpoint(f"10.0.0.{i}", {}),
                          "targetRef": {"kind": built("Pod"), "namespace": built("shop"),
                                        "name": f"p{i}"}} for i in range(2)]}
    expected = copy.deepcopy(obj)
    first, second = (e["targetRef"] for e in obj["endpoints"])
    assert first["namespace"] is not second["namespace"]
    compact("EndpointSlice", obj)
    assert obj == expected
    assert first["kind"] is second["kind"] and first["namespace"] is second["namespace"]


odd_values = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.booleans(),
                       st.lists(st.booleans(), max_size=2))


@given(conditions=st.dictionaries(st.sampled_from(["ready", "serving", "terminating", "x"]),
                                  odd_values, max_size=4),
       node=odd_values, endpoints=odd_values)
def test_malformed_slices_are_left_as_they_are_for_the_converter_to_refuse(
    conditions: dict[str, Any], node: Any, endpoints: Any
) -> None:
    """Whatever the shape, compacting never raises and never changes a value."""
    for obj in ({"kind": "EndpointSlice", "metadata": {"name": "s"},
                 "endpoints": [{"conditions": conditions, "nodeName": node},
                               {"targetRef": {"kind": node, "namespace": endpoints}},
                               {"targetRef": node}, "junk", None]},
                {"kind": "EndpointSlice", "metadata": "junk", "endpoints": endpoints}):
        before = copy.deepcopy(obj)
        compact("EndpointSlice", obj)
        assert obj == before


def test_other_kinds_lose_only_managed_fields() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web", "managedFields": [{"manager": "k"}]},
           "spec": {"conditions": {"ready": True}}}
    compact("Service", obj)
    assert obj == {"kind": "Service", "metadata": {"name": "web"},
                   "spec": {"conditions": {"ready": True}}}
