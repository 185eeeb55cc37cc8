"""Flow JSON: Hubble's field names and casing, round trips, and Hubble's own output."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agent.flows.codec import (
    envelope,
    format_time,
    lost_event_to_json,
    parse_time,
)
from agent.flows.flow import (
    Flow,
    ICMPv4,
    LostEvent,
    LostEventSource,
    TrafficDirection,
    Verdict,
    flow_from_json,
    flow_to_json,
    summarize,
)
from agent.flows.fromjson import lost_event_from_json
from tests.unit.flows.samples import T0, all_samples, http_response, policy_drop, syn


def test_tcp_flow_uses_hubble_field_names() -> None:
    j = flow_to_json(syn())
    assert j["time"] == "2023-11-22T10:00:00.123Z"
    assert j["verdict"] == "FORWARDED"
    assert j["IP"] == {"source": "10.1.0.5", "destination": "10.1.1.7", "ipVersion": "IPv4"}
    assert j["l4"] == {"TCP": {"source_port": 43512, "destination_port": 8080,
                               "flags": {"SYN": True}}}
    assert j["source"] == {
        "ID": 101,
        "identity": 12345,
        "namespace": "shop",
        "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop", "k8s:tier=front"],
        "pod_name": "web-1",
        "workloads": [{"name": "web", "kind": "Deployment"}],
    }
    assert j["Type"] == "L3_L4"
    assert j["node_name"] == "node-1"
    assert j["event_type"] == {"type": 4}  # sub_type 0 is left out, as protobuf JSON does
    assert j["destination_service"] == {"name": "echo", "namespace": "shop"}
    assert j["traffic_direction"] == "EGRESS"
    assert j["trace_observation_point"] == "TO_ENDPOINT"
    assert j["is_reply"] is False
    assert j["Summary"] == "TCP Flags: SYN"
    assert "drop_reason_desc" not in j and "l7" not in j and "tulle" not in j
    assert list(j)[:4] == ["time", "uuid", "verdict", "IP"]  # proto field order


def test_drop_and_l7_fields() -> None:
    d = flow_to_json(policy_drop())
    assert d["verdict"] == "DROPPED"
    assert d["drop_reason"] == 133
    assert d["drop_reason_desc"] == "POLICY_DENIED"
    assert d["event_type"] == {"type": 1, "sub_type": 133}
    assert d["tulle"] == {"rule": "data/deny-all", "drop_file": "bpf_lxc.c", "drop_line": 412}

    r = flow_to_json(http_response())
    assert r["Type"] == "L7"
    assert r["l7"] == {
        "type": "RESPONSE",
        "latency_ns": "3000000",  # uint64 is a string in protobuf JSON
        "http": {"code": 200, "method": "GET", "url": "http://echo/hello",
                 "protocol": "HTTP/1.1"},
    }
    assert r["is_reply"] is True and r["reply"] is True
    assert r["Summary"] == "HTTP/1.1 200 3ms (GET http://echo/hello)"


def test_envelope_is_one_hubble_line() -> None:
    line = json.dumps(envelope(syn()))
    back = json.loads(line)
    assert set(back) == {"flow", "node_name", "time"}
    assert back["node_name"] == "node-1"
    assert back["time"] == "2023-11-22T10:00:00.123Z"


@pytest.mark.parametrize("flow", all_samples(), ids=lambda f: f.uuid[-2:] or "udp")
def test_round_trip(flow: Flow) -> None:
    text = json.dumps(envelope(flow))
    back = flow_from_json(json.loads(text))
    # Only the summary differs: it is derived when printed and stored once read back.
    assert back == dataclasses.replace(flow, summary=summarize(flow))
    assert flow_to_json(back) == flow_to_json(flow)


HUBBLE_LINE = {
    "flow": {
        "time": "2023-11-22T10:00:00.123456789Z",
        "uuid": "5f1e2c3d-aaaa-bbbb-cccc-000000000001",
        "verdict": "DROPPED",
        "drop_reason": 133,
        "ethernet": {"source": "aa:bb:cc:dd:ee:01", "destination": "aa:bb:cc:dd:ee:02"},
        "IP": {"source": "10.244.1.5", "destination": "10.244.2.9", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 51234, "destination_port": 80, "flags": {"SYN": True}}},
        "source": {"ID": 1234, "identity": 5678, "cluster_name": "default",
                   "namespace": "default", "labels": ["k8s:app=xwing"], "pod_name": "xwing"},
        "destination": {"identity": 9012, "namespace": "default",
                        "labels": ["k8s:app=deathstar"], "pod_name": "deathstar-6c94dcc57b-7ddhs",
                        "workloads": [{"name": "deathstar", "kind": "Deployment"}]},
        "Type": "L3_L4",
        "node_name": "kind-worker",
        "event_type": {"type": 1, "sub_type": 133},
        "traffic_direction": "INGRESS",
        "drop_reason_desc": "POLICY_DENIED",
        "is_reply": False,
        "interface": {"index": 12, "name": "lxc1234"},
        "Summary": "TCP Flags: SYN",
    },
    "node_name": "kind-worker",
    "time": "2023-11-22T10:00:00.123456789Z",
}


def test_reads_hubble_output() -> None:
    f = flow_from_json(HUBBLE_LINE)
    assert f.time == T0 + 456_789
    assert f.verdict == Verdict.DROPPED
    assert f.drop_reason_desc == "POLICY_DENIED"
    assert f.source is not None and f.source.pod_name == "xwing"
    assert f.destination is not None
    assert f.destination.workloads[0].kind == "Deployment"
    assert f.traffic_direction == TrafficDirection.INGRESS
    assert f.is_reply is False
    assert f.summary == "TCP Flags: SYN"


def test_reads_bare_flow_numbers_and_strings() -> None:
    f = flow_from_json({
        "time": "2023-11-22T11:00:00.123+01:00",
        "verdict": 2,  # enum by number
        "l4": {"ICMPv4": {"type": 8}},
        "l7": {"type": 2, "latency_ns": 1500000, "http": {"code": 503}},
        "traffic_direction": "EGRESS",
        "some_future_field": {"x": 1},
    })
    assert f.time == T0
    assert f.verdict == Verdict.DROPPED
    assert f.l4 == ICMPv4(8, 0)
    assert f.l7 is not None and f.l7.latency_ns == 1_500_000 and f.l7.http is not None
    assert f.l7.type == "RESPONSE" and f.l7.http.code == 503


def test_time_formats() -> None:
    assert format_time(T0 - 123_000_000) == "2023-11-22T10:00:00Z"
    assert format_time(T0) == "2023-11-22T10:00:00.123Z"
    assert format_time(T0 + 4_000) == "2023-11-22T10:00:00.123004Z"
    assert format_time(T0 + 5) == "2023-11-22T10:00:00.123000005Z"
    for ns in (T0, T0 + 4_000, T0 + 5):
        assert parse_time(format_time(ns)) == ns
    assert parse_time("2023-11-22T05:00:00.123-05:00") == T0
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")


def test_lost_event_line() -> None:
    ev = LostEvent(LostEventSource.PERF_EVENT_RING_BUFFER, 42, cpu=1, time=T0, node_name="n1")
    j = lost_event_to_json(ev)
    assert j == {"lost_events": {"source": "PERF_EVENT_RING_BUFFER", "num_events_lost": "42",
                                 "cpu": 1},
                 "node_name": "n1", "time": "2023-11-22T10:00:00.123Z"}
    assert lost_event_from_json(j) == ev


def test_drop_file_and_line_in_hubble_fileinfo() -> None:
    """Issue 12 item 6: drops carry Hubble's ``file{name,line}``; Hubble's JSON reads back."""
    out = flow_to_json(policy_drop())
    assert out["file"] == {"name": "bpf_lxc.c", "line": 412}
    assert "file" not in flow_to_json(syn())
    hubble = {k: v for k, v in out.items() if k != "tulle"}  # as Hubble writes it
    back = flow_from_json(hubble)
    assert back.tulle is not None
    assert (back.tulle.drop_file, back.tulle.drop_line) == ("bpf_lxc.c", 412)
    assert flow_from_json(out) == flow_from_json(json.loads(json.dumps(out)))


WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"
DB_ID = "spiffe://cluster.local/ns/shop/sa/default"


@pytest.mark.parametrize("with_tulle", [False, True])
def test_spiffe_ids_travel_under_tulle_and_round_trip(with_tulle: bool) -> None:
    from agent.flows.flow import Endpoint, TulleInfo

    flow = dataclasses.replace(
        syn(), source=Endpoint(pod_name="web-1", namespace="shop", spiffe_id=WEB_ID),
        destination=Endpoint(pod_name="db-0", namespace="shop", spiffe_id=DB_ID),
        tulle=TulleInfo(bytes_sent=5) if with_tulle else None)
    out = json.loads(json.dumps(flow_to_json(flow)))
    assert out["tulle"]["source_spiffe_id"] == WEB_ID
    assert out["tulle"]["destination_spiffe_id"] == DB_ID
    assert "spiffe_id" not in out["source"]  # Hubble's endpoint schema is left alone
    assert flow_from_json(out) == dataclasses.replace(flow, summary=summarize(flow))


def test_a_flow_without_pods_writes_no_spiffe_ids() -> None:
    from agent.flows.flow import Endpoint

    flow = dataclasses.replace(syn(), source=Endpoint(identity=2, labels=("reserved:world",)),
                               destination=Endpoint(pod_name="db-0", spiffe_id=DB_ID),
                               tulle=None)
    out = flow_to_json(flow)
    assert out["tulle"] == {"destination_spiffe_id": DB_ID}
    assert flow_from_json(out).tulle is None
