"""The JSONPath subset of CRD printer columns: what it selects, and what it refuses by name."""

from __future__ import annotations

import pytest

from lab.apiserver.jsonpath import JsonPathError, find, parse

GATEWAY = {
    "spec": {"gatewayClassName": "tulle", "hostnames": ["a", "b"]},
    "status": {
        "addresses": [{"value": "10.0.0.1"}, {"value": "10.0.0.2"}],
        "conditions": [
            {"type": "Accepted", "status": "True", "observedGeneration": 2},
            {"type": "Programmed", "status": "False"},
        ],
    },
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (".spec.gatewayClassName", ["tulle"]),
        ("{.spec.gatewayClassName}", ["tulle"]),
        (".spec.hostnames", [["a", "b"]]),
        (".spec.hostnames[1]", ["b"]),
        (".spec.hostnames[-1]", ["b"]),
        (".spec.hostnames[5]", []),
        (".status.addresses[*].value", ["10.0.0.1", "10.0.0.2"]),
        ('.status.conditions[?(@.type=="Programmed")].status', ["False"]),
        (".status.conditions[?(@.type=='Accepted')].status", ["True"]),
        (".status.conditions[?(@.observedGeneration==2)].type", ["Accepted"]),
        ('.status.conditions[?(@.type=="Nope")].status', []),
        (".spec.missing.deeper", []),
        (".spec.gatewayClassName.deeper", []),
    ],
)
def test_find(path: str, found: list[object]) -> None:
    assert find(GATEWAY, parse(path)) == found


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("spec.mode", "must start with '.'"),
        (".spec[", "cannot read"),
        (".spec[?(@.a>1)]", "unsupported selector"),
        (".spec..deep", "cannot read"),
        (".a b", "cannot read"),
    ],
)
def test_refused_paths_say_where(path: str, words: str) -> None:
    with pytest.raises(JsonPathError, match=words.replace("[", r"\[").replace("(", r"\(")):
        parse(path)
