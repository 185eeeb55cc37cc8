"""The plugin's commands: ADD, DEL, CHECK, VERSION, and 1.1.0's STATUS and GC.

``run`` maps (environment, stdin) to (stdout, exit status) and never raises for bad input:
every failure is the SPEC's error object. Netlink and waiting are passed in, so the
conformance tests drive every command without root.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cni import store
from cni.record import EndpointRecord, PodRef, RecordError, decode_mark, decode_record, record_key
from cni.spec import (
    CURRENT_VERSION,
    ERR_CHECK_MISMATCH,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INVALID_CONFIG,
    ERR_IO,
    ERR_NOT_ATTACHED,
    ERR_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    SUPPORTED_VERSIONS,
    CniError,
    Invocation,
    NetConf,
    config_version,
    decode_json,
    parse_config,
    parse_env,
    parse_prev_result,
    pod_identity,
    pod_ips,
    version_at_least,
)

if TYPE_CHECKING:
    from cni.link import HostPeer

PeerFinder = Callable[[str, str], "HostPeer"]  # (netns, ifname) -> the host-side veth
Waiter = Callable[[Path, EndpointRecord, float], bool]


def _find_host_peer(netns: str, ifname: str) -> HostPeer:
    from cni.link import find_host_peer

    return find_host_peer(netns, ifname)


def run(
    env: Mapping[str, str],
    read_stdin: Callable[[], bytes],
    find_peer: PeerFinder = _find_host_peer,
    wait: Waiter = store.wait_attached,
) -> tuple[str, int]:
    """One invocation: (what to print on stdout, exit status)."""
    version = CURRENT_VERSION
    try:
        inv = parse_env(env)
        if inv.command == "VERSION":
            return _version(read_stdin()), 0
        doc = decode_json(read_stdin())
        version = config_version(doc)
        conf = parse_config(doc)
        if inv.command == "ADD":
            return _add(inv, conf, find_peer, wait), 0
        if inv.command == "DEL":
            _io(lambda: store.remove(Path(conf.state_dir), _key(conf, inv)), "forget", conf)
        elif inv.command == "CHECK":
            _check(inv, conf, find_peer)
        elif inv.command == "STATUS":
            _status(conf)
        else:
            _gc(conf)
        return "", 0
    except CniError as err:
        return json.dumps(err.to_json(version)), 1


def _version(stdin: bytes) -> str:
    # VERSION answers whatever came on stdin: runtimes send {"cniVersion": ...} or nothing.
    try:
        asked = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        asked = None
    version = asked if asked in SUPPORTED_VERSIONS else CURRENT_VERSION
    return json.dumps({"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)})


def _key(conf: NetConf, inv: Invocation) -> str:
    return record_key(conf.name, inv.container_id, inv.ifname)


def _io(action: Callable[[], Any], what: str, conf: NetConf) -> Any:
    try:
        return action()
    except OSError as err:
        raise CniError(
            ERR_IO, f"cannot {what} the endpoint record in {conf.state_dir}", str(err)
        ) from None


def _needs_prev_result(conf: NetConf) -> Mapping[str, Any]:
    if conf.prev_result is None:
        raise CniError(
            ERR_INVALID_CONFIG,
            "tulle-cni is a chained plugin and got no prevResult",
            "list it after the cluster's CNI plugin in the same .conflist",
        )
    return conf.prev_result


def _observe(inv: Invocation, conf: NetConf, find_peer: PeerFinder) -> EndpointRecord:
    """The record of this attachment as the previous plugins and the kernel show it now."""
    prev = parse_prev_result(_needs_prev_result(conf))
    peer = find_peer(inv.netns, inv.ifname)
    pod = pod_identity(inv.args)
    return EndpointRecord(
        network=conf.name,
        container_id=inv.container_id,
        ifname=inv.ifname,
        netns=inv.netns,
        pod=None if pod is None else PodRef(*pod),
        ips=pod_ips(prev, inv.ifname, inv.netns),
        host_ifname=peer.ifname,
        host_ifindex=peer.ifindex,
    )


def _add(inv: Invocation, conf: NetConf, find_peer: PeerFinder, wait: Waiter) -> str:
    rec = _observe(inv, conf, find_peer)
    state = Path(conf.state_dir)

    def write() -> None:
        store.remove(state, rec.key)  # a mark left by a sandbox that got no DEL is not ours
        store.write_record(state, rec)

    _io(write, "write", conf)
    if conf.attach_timeout > 0 and not wait(state, rec, conf.attach_timeout):
        raise CniError(
            ERR_TRY_AGAIN,
            f"the Tulle agent has not attached its datapath to {rec.host_ifname} "
            f"(ifindex {rec.host_ifindex}) within {conf.attach_timeout:g}s",
            "the pod starts only once it is policed; check the tulle-agent pod on this node",
        )
    result = dict(conf.prev_result or {})
    result.setdefault("cniVersion", conf.cni_version)
    return json.dumps(result)  # a chained plugin that changes nothing passes prevResult on


def _check(inv: Invocation, conf: NetConf, find_peer: PeerFinder) -> None:
    if not version_at_least(conf.cni_version, "0.4.0"):
        raise CniError(
            ERR_INCOMPATIBLE_VERSION, "config version does not allow CHECK", conf.cni_version
        )
    state = Path(conf.state_dir)
    try:
        have = _io(lambda: store.read_record(state, _key(conf, inv)), "read", conf)
    except RecordError as err:
        raise CniError(ERR_CHECK_MISMATCH, "the endpoint record is damaged", str(err)) from None
    if have is None:
        raise CniError(
            ERR_CHECK_MISMATCH,
            "no endpoint record for this attachment",
            str(store.endpoint_path(state, _key(conf, inv))),
        )
    want = _observe(inv, conf, find_peer)
    diff = [
        f"{f.name}: recorded {getattr(have, f.name)!r}, now {getattr(want, f.name)!r}"
        for f in fields(EndpointRecord)
        if getattr(have, f.name) != getattr(want, f.name)
    ]
    if diff:
        raise CniError(ERR_CHECK_MISMATCH, "the endpoint record differs", "; ".join(diff))
    mark = store.read_mark(state, want.key)
    if conf.attach_timeout > 0 and (mark is None or mark.host_ifindex != want.host_ifindex):
        raise CniError(
            ERR_NOT_ATTACHED,
            f"the Tulle agent has not attached its datapath to "
            f"{want.host_ifname} (ifindex {want.host_ifindex})",
        )


def _status(conf: NetConf) -> None:
    if not version_at_least(conf.cni_version, "1.1.0"):
        raise CniError(
            ERR_INCOMPATIBLE_VERSION, "config version does not allow STATUS", conf.cni_version
        )
    agent = store.agent_path(Path(conf.state_dir))
    # Without waiting, ADD needs nothing of the agent; with it, ADD would time out.
    if conf.attach_timeout > 0 and not agent.exists():
        raise CniError(
            ERR_NOT_AVAILABLE, "the Tulle agent is not running on this node", f"no {agent}"
        )


def _gc(conf: NetConf) -> None:
    if not version_at_least(conf.cni_version, "1.1.0"):
        raise CniError(
            ERR_INCOMPATIBLE_VERSION, "config version does not allow GC", conf.cni_version
        )
    if conf.valid_attachments is None:
        raise CniError(ERR_INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
    state = Path(conf.state_dir)
    valid = {record_key(conf.name, cid, ifname) for cid, ifname in conf.valid_attachments}
    gone = [k for k in _io(lambda: store.keys(state), "list", conf) if k not in valid]
    for key in gone:
        if _network_of(state, key) == conf.name:  # other networks' attachments are not ours
            _io(functools.partial(store.remove, state, key), "remove", conf)


def _network_of(state: Path, key: str) -> str | None:
    """The network a key belongs to (GC removes only its own network's attachments)."""
    for path, decode in (
        (store.endpoint_path(state, key), decode_record),
        (store.mark_path(state, key), decode_mark),
    ):
        try:
            return decode(path.read_bytes()).network
        except (OSError, RecordError):
            continue
    return None
