from datetime import UTC, datetime

from agent.cli.printers import age, table

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def _pod(name, ns, ready, restarts, phase="Running"):
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-11-22T11:59:00Z"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "node1"},
        "status": {
            "phase": phase,
            "podIP": "10.244.1.2",
            "containerStatuses": [{"ready": ready, "restartCount": restarts, "state": {}}],
        },
    }


def test_age_buckets():
    obj = {"metadata": {"creationTimestamp": "2026-11-22T10:00:00Z"}}
    assert age(obj, NOW) == "2h"
    assert age({"metadata": {"creationTimestamp": "2026-11-22T10:30:00Z"}}, NOW) == "90m"
    assert age({"metadata": {"creationTimestamp": "2026-11-22T11:59:30Z"}}, NOW) == "30s"
    assert age({"metadata": {}}, NOW) == "<unknown>"


def test_pod_table_columns_and_all_namespaces():
    out = table(
        [_pod("web-1", "shop", True, 2)], "Pod", all_namespaces=True, wide=True, namespaced=True
    )
    header, row = out.splitlines()
    assert header.split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
    ]
    assert row.split()[:5] == ["shop", "web-1", "1/1", "Running", "2"]
    assert row.split()[-2:] == ["10.244.1.2", "node1"]


def test_crashloop_reason_shows_in_status():
    pod = _pod("web-1", "shop", False, 3)
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    out = table([pod], "Pod", all_namespaces=False, wide=False, namespaced=True)
    assert "CrashLoopBackOff" in out and "0/1" in out
