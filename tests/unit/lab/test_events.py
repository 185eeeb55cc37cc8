"""Events the controllers record: the shape kubectl reads, and never a failed round."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from lab.controllers.events import Recorder, event, involved


def test_an_event_names_its_object_as_kubectl_reads_it() -> None:
    pod = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}]},
        }
    )
    ev = event(involved(pod), "Scheduled", "Successfully assigned shop/web-1 to node1", "sched")
    assert ev["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "shop",
        "name": "web-1",
        "uid": "u1",
    }
    assert ev["metadata"]["namespace"] == "shop"
    assert ev["metadata"]["name"].startswith("web-1.")
    assert ev["type"] == "Normal" and ev["count"] == 1 and ev["source"] == {"component": "sched"}


class RefusingApi:
    def __init__(self) -> None:
        self.tried = 0

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.tried += 1
        raise ConnectionRefusedError("the API server is away")


def test_an_event_that_cannot_be_written_is_dropped_not_raised() -> None:
    api = RefusingApi()
    about = {"apiVersion": "v1", "kind": "Pod", "namespace": "a", "name": "p", "uid": "u"}
    Recorder(api).record(about, "Scheduled", "m", "sched")  # type: ignore[arg-type]
    assert api.tried == 1
