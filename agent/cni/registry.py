"""The pod attachments ``tulle-cni`` recorded on this node, and the agent's answers.

The plugin writes ``<stateDir>/endpoints/<key>.json`` on each CNI ADD and waits (bounded) for
the agent to write ``<stateDir>/attached/<key>.json`` once its programs police the record's
host veth (layout and format: ``cni.record``, one definition for both sides). The agent
announces itself with ``<stateDir>/agent.json``, which the plugin's STATUS reads.

Parsing and indexing are pure functions over file contents; ``read_*``, ``mark_attached``,
``clear_mark``, ``announce`` and ``withdraw`` are the thin I/O around them.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cni import store
from cni.record import (
    ATTACHED_DIR,
    ENDPOINTS_DIR,
    SCHEMA,
    AttachMark,
    EndpointRecord,
    RecordError,
    decode_mark,
    decode_record,
    mark_for,
)
from cni.spec import DEFAULT_STATE_DIR

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_DIR = Path(DEFAULT_STATE_DIR)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every parsable record by key, and the files that were not records (name, why)."""

    records: Mapping[str, EndpointRecord]
    damaged: tuple[tuple[str, str], ...] = ()


def parse_records(files: Mapping[str, bytes]) -> Snapshot:
    """Records from ``{file name: contents}`` of the endpoints directory (pure). A file whose
    name is not its record's key was not written by the plugin and counts as damaged."""
    records: dict[str, EndpointRecord] = {}
    damaged: list[tuple[str, str]] = []
    for name in sorted(files):
        try:
            rec = decode_record(files[name])
        except RecordError as err:
            damaged.append((name, str(err)))
            continue
        if f"{rec.key}.json" != name:
            damaged.append((name, f"holds the record of {rec.key!r}"))
            continue
        records[rec.key] = rec
    return Snapshot(records, tuple(damaged))


def parse_marks(files: Mapping[str, bytes]) -> dict[str, AttachMark]:
    """The agent's marks by key (pure); damaged ones are skipped: the agent rewrites them."""
    marks = {}
    for name, data in files.items():
        try:
            mark = decode_mark(data)
        except RecordError:
            continue
        if f"{mark.key}.json" == name:
            marks[mark.key] = mark
    return marks


def by_ip(records: Iterable[EndpointRecord]) -> tuple[dict[IP, EndpointRecord], set[IP]]:
    """The record that owns each pod IP, and the IPs two records claim (a stale record of a
    sandbox that got no DEL): those are left out rather than guessed."""
    owner: dict[IP, EndpointRecord] = {}
    conflicts: set[IP] = set()
    for rec in records:
        for text in rec.ips:
            ip = ipaddress.ip_interface(text).ip
            if ip in owner and owner[ip] != rec:
                conflicts.add(ip)
            owner[ip] = rec
    for ip in conflicts:
        owner.pop(ip)
    return owner, conflicts


def by_pod_uid(records: Iterable[EndpointRecord]) -> dict[str, list[EndpointRecord]]:
    out: dict[str, list[EndpointRecord]] = {}
    for rec in records:
        if rec.pod is not None and rec.pod.uid:
            out.setdefault(rec.pod.uid, []).append(rec)
    return out


def unattached(
    records: Iterable[EndpointRecord], marks: Mapping[str, AttachMark]
) -> list[EndpointRecord]:
    """Records whose host veth the agent has not marked (a mark for another ifindex is a
    previous sandbox's): the agent's to-do list, and what the plugin's ADD is waiting on."""
    return [r for r in records if marks.get(r.key) != mark_for(r)]


def _read_dir(path: Path) -> dict[str, bytes]:
    files = {}
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return {}
    for name in names:
        if not name.endswith(".json") or name.startswith("."):  # temp files of a writer
            continue
        try:
            files[name] = (path / name).read_bytes()
        except FileNotFoundError:  # removed by a DEL since the listing
            continue
    return files


def read_records(state_dir: Path = DEFAULT_DIR) -> Snapshot:
    return parse_records(_read_dir(state_dir / ENDPOINTS_DIR))


def read_marks(state_dir: Path = DEFAULT_DIR) -> dict[str, AttachMark]:
    return parse_marks(_read_dir(state_dir / ATTACHED_DIR))


def mark_attached(state_dir: Path, rec: EndpointRecord) -> None:
    """Tell the plugin (and CHECK) that the datapath polices ``rec``'s host veth. Call only
    after the endpoint entry is written and the programs are attached."""
    store.write_mark(state_dir, mark_for(rec))


def clear_mark(state_dir: Path, key: str) -> None:
    store.mark_path(state_dir, key).unlink(missing_ok=True)


def announce(state_dir: Path = DEFAULT_DIR, node: str = "") -> None:
    """The agent reads this directory now (the plugin's STATUS answers ready)."""
    doc = {"schema": SCHEMA, "node": node, "pid": os.getpid()}
    store.write_atomic(store.agent_path(state_dir), json.dumps(doc).encode())


def withdraw(state_dir: Path = DEFAULT_DIR) -> None:
    store.agent_path(state_dir).unlink(missing_ok=True)
