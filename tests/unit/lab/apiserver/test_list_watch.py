"""list (selectors, pagination) and watch (resume, 410 Gone, bookmarks, timeouts)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.lab.apiserver.conftest import Client, configmap

CMS = "/api/v1/namespaces/default/configmaps"
ALL_CMS = "/api/v1/configmaps"


def _names(reply_body: dict[str, Any]) -> list[str]:
    return [i["metadata"]["name"] for i in reply_body["items"]]


def _make(client: Client, *names: str, labels: dict[str, str] | None = None) -> None:
    for name in names:
        assert client.request("POST", CMS, configmap(name, labels=labels)).status == 201


def test_label_selectors_equality_and_sets(client: Client) -> None:
    client.request("POST", CMS, configmap("a", labels={"app": "web", "tier": "front"}))
    client.request("POST", CMS, configmap("b", labels={"app": "web", "tier": "back"}))
    client.request("POST", CMS, configmap("c", labels={"app": "db"}))
    cases = {
        "app=web": ["a", "b"],
        "app==web,tier!=back": ["a"],
        "tier in (front, back)": ["a", "b"],
        "app notin (web)": ["c"],
        "tier": ["a", "b"],
        "!tier": ["c"],
        "app=web,tier": ["a", "b"],
    }
    for selector, expected in cases.items():
        assert _names(client.get(CMS, labelSelector=selector).body) == expected, selector


def test_malformed_label_selector_is_400(client: Client) -> None:
    reply = client.get(CMS, labelSelector="app in web")
    assert reply.status == 400 and "labelSelector" in reply.body["message"]


def test_field_selectors(client: Client) -> None:
    _make(client, "a", "b")
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    client.request("POST", "/api/v1/namespaces", ns)
    client.request("POST", "/api/v1/namespaces/other/configmaps", configmap("a", ns="other"))
    assert _names(client.get(CMS, fieldSelector="metadata.name=b").body) == ["b"]
    assert _names(client.get(CMS, fieldSelector="metadata.name!=b").body) == ["a"]
    across = client.get(ALL_CMS, fieldSelector="metadata.namespace=other").body
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in across["items"]] == [
        ("other", "a")
    ]


def test_unsupported_field_selector_is_400_naming_it(client: Client) -> None:
    reply = client.get(CMS, fieldSelector="data.x=1")
    assert reply.status == 400 and '"data.x"' in reply.body["message"]


def test_pagination_with_limit_and_continue(client: Client) -> None:
    _make(client, *"abcde")
    first = client.get(CMS, limit="2").body
    assert _names(first) == ["a", "b"] and first["metadata"]["remainingItemCount"] == 3
    rv = first["metadata"]["resourceVersion"]
    second = client.get(CMS, limit="2", **{"continue": first["metadata"]["continue"]}).body
    assert _names(second) == ["c", "d"] and second["metadata"]["resourceVersion"] == rv
    third = client.get(CMS, limit="2", **{"continue": second["metadata"]["continue"]}).body
    assert _names(third) == ["e"] and "continue" not in third["metadata"]


def test_pagination_applies_selectors_before_the_limit(client: Client) -> None:
    _make(client, "a", "c", labels={"keep": "yes"})
    _make(client, "b")
    page = client.get(CMS, limit="1", labelSelector="keep=yes").body
    assert _names(page) == ["a"]
    rest = client.get(
        CMS, limit="1", labelSelector="keep=yes", **{"continue": page["metadata"]["continue"]}
    )
    assert _names(rest.body) == ["c"]


def test_expired_continue_token_is_410(client: Client) -> None:
    _make(client, "a", "b")
    token = client.get(CMS, limit="1").body["metadata"]["continue"]
    for i in range(25):  # the fixture's store keeps 20 events
        client.request("POST", CMS, configmap(f"x{i}"))
    reply = client.get(CMS, limit="1", **{"continue": token})
    assert reply.status == 410 and reply.body["reason"] == "Expired"


def test_garbage_continue_token_is_400(client: Client) -> None:
    assert client.get(CMS, **{"continue": "!!!"}).status == 400


class Collector:
    """Consume a watch in a thread; events land in ``events``."""

    def __init__(self, stream: Iterator[dict[str, Any]]) -> None:
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: Iterator[dict[str, Any]]) -> None:
        try:
            for event in stream:
                self.events.append(event)
        finally:
            self.done.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline and not self.done.is_set():
            time.sleep(0.01)
        return self.events


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def test_watch_without_resource_version_starts_with_current_objects(client: Client) -> None:
    _make(client, "a")
    watch = Collector(client.watch(CMS, timeoutSeconds="3"))
    assert _summary(watch.wait_for(1)) == [("ADDED", "a")]
    _make(client, "b")
    client.request("DELETE", f"{CMS}/a")
    assert _summary(watch.wait_for(3)) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_watch_resumes_after_a_resource_version_without_replaying(client: Client) -> None:
    _make(client, "a")
    rv = client.get(CMS).body["metadata"]["resourceVersion"]
    _make(client, "b")
    current = client.get(f"{CMS}/b").body
    client.request("PUT", f"{CMS}/b", {**current, "data": {"v": "2"}})
    events = list(client.watch(CMS, resourceVersion=rv, timeoutSeconds="1"))
    assert _summary(events) == [("ADDED", "b"), ("MODIFIED", "b")]
    assert events[1]["object"]["data"] == {"v": "2"}
    last = events[-1]["object"]["metadata"]["resourceVersion"]
    assert list(client.watch(CMS, resourceVersion=last, timeoutSeconds="0.5")) == []


def test_watch_from_a_compacted_version_gets_410_expired(client: Client) -> None:
    _make(client, "a")
    old = client.get(CMS).body["metadata"]["resourceVersion"]
    for i in range(25):
        client.request("POST", CMS, configmap(f"x{i}"))
    events = list(client.watch(CMS, resourceVersion=old, timeoutSeconds="2"))
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"


def test_bookmarks_carry_the_latest_revision(client: Client) -> None:
    _make(client, "a")
    rv = client.get(CMS).body["metadata"]["resourceVersion"]
    # Writes to another kind advance the revision; the bookmark reports it.
    client.request(
        "POST", "/api/v1/namespaces/default/secrets", {"kind": "Secret", "metadata": {"name": "s"}}
    )
    head = client.get("/api/v1/namespaces/default/secrets").body["metadata"]["resourceVersion"]
    events = list(
        client.watch(CMS, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="0.6")
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and all(e["type"] == "BOOKMARK" for e in events)
    assert bookmarks[-1]["object"]["metadata"]["resourceVersion"] == head
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"


def test_no_bookmarks_unless_asked(client: Client) -> None:
    assert list(client.watch(CMS, timeoutSeconds="0.6")) == []


def test_watch_ends_after_timeout_seconds(client: Client) -> None:
    start = time.monotonic()
    list(client.watch(CMS, timeoutSeconds="0.3"))
    assert time.monotonic() - start < 5


def test_watch_with_a_selector_sees_objects_enter_and_leave_it(client: Client) -> None:
    _make(client, "a", labels={"app": "web"})
    watch = Collector(client.watch(CMS, labelSelector="app=web", timeoutSeconds="3"))
    watch.wait_for(1)
    obj = client.get(f"{CMS}/a").body
    obj["metadata"]["labels"] = {"app": "db"}
    obj = client.request("PUT", f"{CMS}/a", obj).body
    obj["metadata"]["labels"] = {"app": "web"}
    client.request("PUT", f"{CMS}/a", obj)
    _make(client, "other")  # never matches
    assert _summary(watch.wait_for(3)) == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]


def test_a_selecting_watch_from_a_resource_version_sees_an_object_leave_it(
    client: Client,
) -> None:
    _make(client, "a", labels={"app": "web"})
    _make(client, "b", labels={"app": "db"})
    rv = client.get(CMS).body["metadata"]["resourceVersion"]
    watch = Collector(client.watch(CMS, labelSelector="app=web", resourceVersion=rv,
                                   timeoutSeconds="3"))
    for name, app in (("a", "db"), ("b", "web")):
        obj = client.get(f"{CMS}/{name}").body
        obj["metadata"]["labels"] = {"app": app}
        client.request("PUT", f"{CMS}/{name}", obj)
    assert _summary(watch.wait_for(2)) == [("DELETED", "a"), ("ADDED", "b")]


def test_a_selecting_watch_from_an_older_resource_version_sees_what_left_before_it_began(
    client: Client,
) -> None:
    """The changes happen between the resourceVersion and the watch request (the race the
    test above can lose): the matching set is the one at that resourceVersion, not now's."""
    _make(client, "a", labels={"app": "web"})
    _make(client, "b", labels={"app": "db"})
    _make(client, "c", labels={"app": "db"})
    rv = client.get(CMS).body["metadata"]["resourceVersion"]
    for name, app in (("a", "db"), ("b", "web")):
        obj = client.get(f"{CMS}/{name}").body
        obj["metadata"]["labels"] = {"app": app}
        client.request("PUT", f"{CMS}/{name}", obj)
    _make(client, "d", labels={"app": "web"})
    watch = Collector(client.watch(CMS, labelSelector="app=web", resourceVersion=rv,
                                   timeoutSeconds="3"))
    assert _summary(watch.wait_for(3)) == [("DELETED", "a"), ("ADDED", "b"), ("ADDED", "d")]


def test_a_watch_from_a_resource_version_reads_no_current_objects(
    server_parts: tuple[Any, Any, Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An informer's watch after its list costs nothing per object already listed: at
    10,000 EndpointSlices, decoding them all again cost ~0.7 s of the server's CPU."""
    _, store, client = server_parts
    _make(client, "a")
    rv = client.get(CMS).body["metadata"]["resourceVersion"]
    listed: list[str] = []
    real_list = type(store).list

    def counting_list(self: Any, kind: str, *args: Any, **kwargs: Any) -> Any:
        listed.append(kind)
        return real_list(self, kind, *args, **kwargs)

    monkeypatch.setattr(type(store), "list", counting_list)
    watch = Collector(client.watch(CMS, resourceVersion=rv, timeoutSeconds="2"))
    _make(client, "b")
    assert _summary(watch.wait_for(1)) == [("ADDED", "b")]
    assert "ConfigMap" not in listed
    list(client.watch(CMS, labelSelector="app=web", resourceVersion=rv, timeoutSeconds="0.2"))
    assert "ConfigMap" in listed  # a selector's starting set still needs them


def test_watch_of_one_namespace_ignores_others(client: Client) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    client.request("POST", "/api/v1/namespaces", ns)
    watch = Collector(client.watch(CMS, timeoutSeconds="1"))
    client.request("POST", "/api/v1/namespaces/other/configmaps", configmap("x", ns="other"))
    _make(client, "mine")
    assert _summary(watch.wait_for(1)) == [("ADDED", "mine")]


@pytest.mark.parametrize("flag", ["True", "t", "1", "TRUE"])
def test_watch_flag_parses_like_go_parsebool(client: Client, flag: str) -> None:
    # kubernetes-asyncio sends watch=True; kube-apiserver parses the flag with strconv.ParseBool.
    _make(client, "a")
    conn = client._conn()
    conn.request(
        "GET",
        f"{CMS}?watch={flag}&timeoutSeconds=0.5",
        headers={"Authorization": f"Bearer {client.token}"},
    )
    lines = conn.getresponse().read().splitlines()
    conn.close()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"]
