"""The node agent's state and its loops: the cluster source's changes, the datapath's sync
loop (the first full sync, then incremental changes), the health report and the Node's Ready
condition. agent/daemon.py builds it from the agent's configuration, starts its threads and
serves flows and metrics beside it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client
from lightkube.types import PatchType

# Only what the lists need is imported here (agent/daemon.py `run` starts them first);
# tests/unit/test_import_agent.py keeps it so.
from agent.datapath.kinds import WATCHED_KINDS
from agent.kube import gcpause
from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.informer import WATCH_BACKOFF
from agent.kube.models import to_model
from agent.kube.resources import NodeStatus
from agent.kube.source import ClusterSource

if TYPE_CHECKING:
    from agent.datapath.controller import DatapathController, ObjectChange
    from agent.healthcheck.server import HealthCheckServer

log = logging.getLogger("tulle.agent")
# What the datapath plans from, less Secrets: its plan never reads them (a Gateway's
# listeners are redirected by its addresses; only the waypoint terminates TLS), so the
# agent's ServiceAccount may not read Secrets (deploy/daemonset/rbac.yaml).
AGENT_KINDS = tuple(k for k in WATCHED_KINDS if k != "Secret")
MODEL_KINDS = ("Service", "EndpointSlice")  # read only as models (the datapath's)
SYNC_DEBOUNCE = 0.02  # at most one datapath sync per this long: bursts coalesce


class Agent:
    def __init__(self, node: str, client: Client, *, backoff: Backoff = WATCH_BACKOFF,
                 plan_ahead: bool = False) -> None:
        """``plan_ahead``: the first sync's Services are planned from the list pages as they
        arrive (``handle_page``), not all after the last page (a datapath agent's start)."""
        self.node = node
        self.client = client
        # The bulky kinds kept as models only (agent.kube.models), not raw dicts beside them.
        self.source = ClusterSource(client, AGENT_KINDS, self.handle, backoff=backoff,
                                    transforms=dict.fromkeys(MODEL_KINDS, to_model),
                                    on_page=self.handle_page if plan_ahead else None)
        self.stop = threading.Event()
        self.changed = threading.Event()
        self.events_seen = 0
        self.last_error: str | None = None
        self.datapath: DatapathController | None = None
        self.reported: tuple[bool, str] | None = None  # last Ready condition written
        self.tracing: Any = None  # agent.tracing.start.Tracing once tracing runs
        self.health_checks: HealthCheckServer | None = None  # agent.daemon starts it
        self.svids: Any = None  # agent.svid.service.SvidService with --ca-address
        self.svid_error: str | None = None  # why it did not start
        # Health report (seconds since the process started, by /proc): ``loaded_s`` when the
        # eBPF programs were compiled, loaded and their maps pinned and adopted (on the BCC
        # thread); ``first_sync_s`` when the maps held the whole listed cluster for the
        # first time (its lists ran beside the compiles, its plan and writes after them).
        self.first_sync_s: float | None = None
        self.loaded_s: float | None = None
        self.first_synced = threading.Event()  # set once the datapath was programmed in full
        self.plan_gate: threading.Event | None = None  # the first plan waits for it (BCC)
        self.startup_gc: gcpause.Hold | None = None  # released after the first sync
        # What the datapath has not seen yet (guarded by source.lock): single changes are
        # planned incrementally; a (re)list of any kind makes the next sync a full resync.
        self.pending: list[ObjectChange] = []
        self.needs_resync = True
        # List pages' models for the datapath to plan ahead before the first sync
        # (guarded by source.lock; handle_page).
        self.ahead: list[Any] = []

    def handle_page(self, kind: str, items: list[Any]) -> None:
        """A list page as it arrives (on its informer's thread), before the list's end puts
        it in the state: until the first sync, the Services and EndpointSlices in it are
        handed to the sync loop, which plans them ahead while the next pages are on their
        way (DatapathController.preplan). At 10,000 Services the EndpointSlices' list takes
        ~1 s of the API server's time: their Maglev tables are built meanwhile, not after."""
        if kind not in MODEL_KINDS or self.first_synced.is_set():
            return
        with self.source.lock:
            self.ahead.extend(items)
        self.changed.set()

    def handle(self, kind: str, delta: Delta[dict[str, Any]] | None) -> None:
        """One change from the cluster source (called under ``source.lock``)."""
        self.events_seen += 1
        if delta is None:
            pass  # a (re)list's end: what it changed came before, as resync deltas (a kind
            # not served, looked at again every few seconds, changes nothing: no resync)
        elif delta.resync:
            self.needs_resync = True
            self.pending.clear()
        elif not self.needs_resync:  # only after a first sync: the datapath is imported
            from agent.datapath.controller import ObjectChange

            namespace, name = delta.key
            new = None if delta.type == "DELETED" else delta.obj
            self.pending.append(ObjectChange(kind, namespace, name, None, new))
        if self.svids is not None and kind in ("Pod", "Namespace"):
            self.svids.changed()  # which identities the node's pods need may have changed
        state = self.source.state
        if state.synced:  # before, the sync loop has nothing to do: no wake-up per listed object
            self.changed.set()
        if delta is None:
            log.info("listed %s: %d at revision %d%s", kind, state.count(kind), state.revision,
                     "; synced" if state.synced else "")
        elif not delta.resync:  # a relist's deltas are summed up by its "listed" line
            ns = f"{delta.key[0]}/" if delta.key[0] else ""
            log.info("%s %s %s%s (revision %d)", delta.type, kind, ns, delta.key[1],
                     delta.revision)

    def report_node_ready(self, ready: bool, reason: str) -> None:
        """Set the Ready condition on this node's Node object, only when it changes.

        An API error (server away, refused) is logged and retried on the next health tick,
        not fatal: the datapath keeps serving whatever the report's fate."""
        try:
            self._report_node_ready(ready, reason)
        except (ApiError, httpx.HTTPError, OSError) as err:
            log.warning("cannot report Node Ready (%s); retrying on the next health tick", err)

    def _report_node_ready(self, ready: bool, reason: str) -> None:
        if self.reported == (ready, reason):
            return  # called every health tick: no request when nothing changed
        with self.source.lock:
            node = self.source.state.get("Node", "", self.node)
        if node is None:
            log.warning("no Node object named %s in the cluster", self.node)
            return
        conditions = (node.get("status") or {}).get("conditions") or []
        current: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        wanted = "True" if ready else "False"
        if current.get("status") == wanted and current.get("reason") == reason:
            self.reported = (ready, reason)
            return
        condition = {
            "type": "Ready",
            "status": wanted,
            "reason": reason,
            "message": f"tulle agent pid {os.getpid()}",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        # Strategic merge: conditions merge by type, so other conditions stay as they are.
        self.client.patch(
            NodeStatus, self.node, {"status": {"conditions": [condition]}},
            patch_type=PatchType.STRATEGIC,
        )
        self.reported = (ready, reason)

    def sync_forever(self) -> None:
        """Program the datapath whenever the cache changed (debounced)."""
        from agent.bcc_thread import process_age
        from agent.datapath.controller import DatapathNotLoaded
        from agent.datapath.native import malloc_trim

        assert self.datapath is not None
        last_sync = -SYNC_DEBOUNCE
        while not self.stop.is_set():
            if not self.changed.wait(0.5):
                continue
            # Leading edge: a change after a quiet spell is applied at once; one within
            # SYNC_DEBOUNCE of the last sync waits out the rest, with the rest of its burst.
            rest = last_sync + SYNC_DEBOUNCE - time.monotonic()
            if rest > 0:
                self.stop.wait(rest)
            self.changed.clear()
            objects: list[dict[str, Any]] | None = None
            if self.first_sync_s is None and self.plan_gate is not None:
                # The first plan waits for the BCC thread's gate (agent.bcc_thread.order):
                # a compile's transient memory must not stack on the plan's peak.
                while not self.plan_gate.wait(0.5):
                    if self.stop.is_set():
                        return
            with self.source.lock:
                # Pages not planned ahead by the first sync are planned by it.
                ahead, self.ahead = self.ahead, []
                synced = self.source.state.synced
                if synced:
                    if self.needs_resync:
                        objects = list(self.source.state.objects.values())
                        self.needs_resync = False
                        self.pending.clear()
                    changes, self.pending = self.pending, []
            if not synced:
                if ahead:
                    self._plan_ahead(ahead)
                continue
            last_sync = time.monotonic()
            try:
                if objects is not None:
                    self.datapath.resync(objects)
                elif changes:
                    self.datapath.apply_changes(changes)  # work per change, not per cluster
                elif self.datapath.cni_pending:  # a tulle-cni record: a pod's ADD waits on it
                    self.datapath.program_pending()
                if objects is not None or any(c.kind in MODEL_KINDS for c in changes):
                    self._update_health_checks()
                self.last_error = None
                if self.first_sync_s is None and objects is not None:
                    self.first_sync_s = process_age()
                    if self.startup_gc is not None:  # what the sync built is frozen by now
                        self.startup_gc.release()
                    malloc_trim()  # the lists' freed bodies, before the tracer's compile
                    self.first_synced.set()
                    log.info(
                        "first datapath sync done %.2f s after the process started: %d objects",
                        self.first_sync_s,
                        len(objects),
                    )
            except DatapathNotLoaded:
                return  # the load failed: run() reports it and stops the agent
            except Exception as err:
                self.last_error = f"datapath: {type(err).__name__}: {err}"
                log.exception("datapath sync failed; resyncing in full on the next round")
                with self.source.lock:
                    self.needs_resync = True  # what failed half-way is replanned from scratch
                self.stop.wait(1.0)
                self.changed.set()

    def _update_health_checks(self) -> None:
        """The health-check node ports' table, from the Services and EndpointSlices (one
        pass over the cached objects, after a sync that changed either kind)."""
        if self.health_checks is None:
            return
        from agent.healthcheck.table import plan_health_checks
        from agent.model.core import EndpointSlice, Service

        with self.source.lock:  # models (MODEL_KINDS): what did not convert is skipped
            state = self.source.state  # (typed as dicts: the transforms make them models)
            found: list[Any] = [*state.of_kind("Service"), *state.of_kind("EndpointSlice")]
        services = [o for o in found if isinstance(o, Service)]
        slices = [o for o in found if isinstance(o, EndpointSlice)]
        self.health_checks.update(plan_health_checks(services, slices, self.node))

    def _plan_ahead(self, objects: list[Any]) -> None:
        assert self.datapath is not None
        try:
            self.datapath.preplan(objects)
        except Exception:  # the first sync plans whatever this did not
            log.exception("planning the listed Services ahead failed; the first sync plans them")

    def health(self) -> dict[str, object]:
        with self.source.lock:
            state = self.source.state
            report: dict[str, object] = {
                "node": self.node,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "time": time.time(),
                "ready": state.synced and self.last_error is None,
                "revision": state.revision,
                "objects": len(state.objects),
                "events": self.events_seen,
                "error": self.last_error,
            }
        if self.datapath is not None:
            loaded = self.datapath.attached.is_set() and self.loaded_s is not None
            applied = self.datapath.applier.applied if loaded else None
            report["datapath"] = {
                "endpoints": len(applied.endpoints) if applied else 0,
                "services": len(applied.slots) if applied else 0,
                "last_sync_ms": round(self.datapath.last_sync_ms, 1),
                "first_sync_s": (
                    None if self.first_sync_s is None else round(self.first_sync_s, 3)
                ),
                "loaded_s": None if self.loaded_s is None else round(self.loaded_s, 3),
                "errors": list(self.datapath.errors),
            }
        if self.tracing is not None:
            report["tracing"] = self.tracing.report()
        if self.svids is not None:  # svids, trust_bundle, svid_failures, ca_address
            report.update(self.svids.manager.report())
        elif self.svid_error is not None:
            report["svid_error"] = self.svid_error
        return report
