"""Hubble's `observe` flags Tulle gained for issue 12 item 6, end to end through click on
golden flows: --workload (from/to), --ip-version/-4/-6, --http-url, --http-header,
--time-format, -o jsonpb and -o tab; and the filters through the observer's proto."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.observe import observe
from agent.flows.codec import envelope
from agent.flows.filters import FilterError, FlowFilter, compile_filters
from agent.flows.flagfilters import FilterBuilder
from agent.flows.flow import HTTP, IP, Flow, HTTPHeader, IPVersion, Layer7
from agent.flows.timefmt import format_time_as
from agent.observer.convert import filter_from_proto, filter_to_proto
from tests.unit.flows import samples

V6 = dataclasses.replace(samples.dns_udp(), uuid="v6",
                         ip=IP("fd00::5", "fd00::9", IPVersion.IPv6))
WITH_HEADER = dataclasses.replace(
    samples.http_request(path="/cart?id=7"), uuid="hdr",
    l7=Layer7(samples.http_request().l7.type, 0,  # type: ignore[union-attr]
              HTTP(0, "GET", "http://echo/cart?id=7", "HTTP/1.1",
                   (HTTPHeader("X-User", "alice"), HTTPHeader("accept", "*/*")))),
)


def golden() -> list[Flow]:
    return [*samples.all_samples(), V6, WITH_HEADER]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "flows.json"
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in golden()))
    return path


def uuids(saved: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--all", "-o", "json",
                                          *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["flow"].get("uuid", "?") for line in result.output.splitlines()]


def by_uuid(flows: list[Flow], *args: str) -> list[str]:
    """uuids of `flows` kept by filter flags given as flag, value pairs."""
    b = FilterBuilder()
    for i in range(0, len(args), 2):
        b.add(args[i], args[i + 1])
    keep = compile_filters(*b.build())
    return [f.uuid or "?" for f in flows if keep(f)]


def test_workload_flags_match_kind_and_name(saved: Path) -> None:
    # web is on one side of every golden flow
    assert uuids(saved, "--workload", "web") == [f.uuid or "?" for f in golden()]
    assert uuids(saved, "--from-workload", "Deployment/echo") == [  # SYN-ACK and response
        "0b1c5a2e-0000-4000-8000-000000000002", "0b1c5a2e-0000-4000-8000-000000000005"]
    assert uuids(saved, "--to-workload", "StatefulSet/db") == ["0b1c5a2e-0000-4000-8000-000000000003"]
    assert uuids(saved, "--to-workload", "Deployment/db") == []  # db is a StatefulSet
    assert uuids(saved, "--not", "--workload", "echo") == [
        "0b1c5a2e-0000-4000-8000-000000000003", "?", "v6"]
    assert by_uuid(golden(), "from-workload", "echo", "to-workload", "web") == [
        "0b1c5a2e-0000-4000-8000-000000000002", "0b1c5a2e-0000-4000-8000-000000000005"]


def test_workload_flag_errors_name_the_value(saved: Path) -> None:
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--workload", "a/b/c"])
    assert result.exit_code == 2 and "expected [kind/]name" in result.output
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--workload", "web",
                                          "--from-workload", "echo"])
    assert result.exit_code == 2 and "cannot be combined" in result.output


def test_ip_version_flags(saved: Path) -> None:
    assert uuids(saved, "-6") == ["v6"]
    assert uuids(saved, "--ip-version", "ipv6") == ["v6"]
    assert "v6" not in uuids(saved, "-4") and len(uuids(saved, "-4")) == len(golden()) - 1
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--ip-version", "7"])
    assert result.exit_code == 2 and "expected ipv4 or ipv6" in result.output


def test_http_url_and_header(saved: Path) -> None:
    assert uuids(saved, "--http-url", r"\?id=7$") == ["hdr"]
    assert uuids(saved, "--http-url", "^http://echo/") == [
        "0b1c5a2e-0000-4000-8000-000000000004", "0b1c5a2e-0000-4000-8000-000000000005", "hdr"]
    assert uuids(saved, "--http-header", "x-user:alice") == ["hdr"]  # key case-insensitive
    assert uuids(saved, "--http-header", "X-User:Alice") == []  # value exact
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--http-header", "nocolon"])
    assert result.exit_code == 2 and "expected key:value" in result.output
    result = CliRunner().invoke(observe, ["--input-file", str(saved), "--http-url", "(a"])
    assert result.exit_code == 2 and "http url" in result.output


def test_new_filter_fields_survive_the_observer_proto() -> None:
    ff = FlowFilter(source_workload=(("Deployment", "web"),), ip_version=("ipv6",),
                    http_url=("cart",), http_header=(("x-user", "alice"),))
    assert filter_from_proto(filter_to_proto(ff)) == ff


def test_bad_header_filter_from_the_wire_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="http header: empty key"):
        compile_filters([FlowFilter(http_header=(("", "x"),))])


@pytest.mark.parametrize(("layout", "text"), [
    ("StampMilli", "Nov 22 10:00:00.123"),
    ("RFC3339", "2023-11-22T10:00:00Z"),
    ("RFC3339Milli", "2023-11-22T10:00:00.123Z"),
    ("RFC3339Micro", "2023-11-22T10:00:00.123000Z"),
    ("RFC3339Nano", "2023-11-22T10:00:00.123Z"),
    ("RFC1123Z", "Wed, 22 Nov 2023 10:00:00 +0000"),
])
def test_time_formats(layout: str, text: str) -> None:
    assert format_time_as(samples.T0, layout) == text


def test_time_format_flag_and_output_aliases(saved: Path) -> None:
    run = CliRunner().invoke
    out = run(observe, ["--input-file", str(saved), "--last", "1",
                        "--time-format", "RFC3339Milli"])
    assert out.exit_code == 0 and out.output.startswith("2023-11-22T10:00:00.")
    tab = run(observe, ["--input-file", str(saved), "--all", "-o", "tab"]).output
    assert tab == run(observe, ["--input-file", str(saved), "--all", "-o", "table"]).output
    assert tab.startswith("TIMESTAMP")
    jsonpb = run(observe, ["--input-file", str(saved), "--all", "-o", "jsonpb"]).output
    assert jsonpb == run(observe, ["--input-file", str(saved), "--all", "-o", "json"]).output
    assert set(json.loads(jsonpb.splitlines()[0])) == {"flow", "node_name", "time"}
    bad = run(observe, ["--input-file", str(saved), "--time-format", "Kitchen"])
    assert bad.exit_code == 2 and "Kitchen" in bad.output
