"""The lab's control plane process: Deployment, scheduler, EndpointSlice and GC controllers,
plus the kubelet for every lab node.

Level-triggered: whenever the store revision moves, list, decode, compute plans with the
pure controllers in agent.controllers, and write the differences back.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from agent.controllers.deployment import orphans, plan_deployment
from agent.controllers.endpointslice import MANAGED_BY, MANAGED_BY_LABEL, desired_slices
from agent.controllers.scheduler import schedule
from agent.lab import procs
from agent.lab.gateways import KINDS as GATEWAY_KINDS
from agent.lab.gateways import GatewayController
from agent.lab.kubelet import Kubelet
from agent.lab.lifecycle import RESTARTS_FILE, load_plan
from agent.lab.restart import RestartPolicy, RestartState, on_exit
from agent.lab.state import LabPaths, write_json_atomic
from agent.model.apps import Deployment
from agent.model.cache import ModelCache
from agent.model.core import Pod, Service
from agent.store import Conflict, NotFound, Store
from agent.store.retry import STORE_BACKOFF, Backoff, is_transient

log = logging.getLogger("tulle.controller")
WATCHED = ("Deployment", "Pod", "Service", "EndpointSlice", *GATEWAY_KINDS)
TICK = 0.1
CHECK_INTERVAL = 0.2  # how often exited system processes are looked for
DEFAULT_RESTART_POLICY = RestartPolicy()


@dataclass
class ClusterView:
    deployments: list[Deployment] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)


def decode(objs: list[dict[str, Any]], models: ModelCache) -> ClusterView:
    view = ClusterView(slices=[o for o in objs if o["kind"] == "EndpointSlice"])
    for res in models.decode_all(objs, ("Deployment", "Pod", "Service")):
        if isinstance(res, Deployment):
            view.deployments.append(res)
        elif isinstance(res, Pod):
            view.pods.append(res)
        elif isinstance(res, Service):
            view.services.append(res)
    return view


class Controller:
    def __init__(self, store: Store, nodes: list[str]):
        self.store = store
        self.nodes = nodes

    def reconcile(self, view: ClusterView) -> None:
        self._deployments(view)
        self._schedule(view)
        self._endpoint_slices(view)

    def _deployments(self, view: ClusterView) -> None:
        for deploy in view.deployments:
            plan = plan_deployment(deploy, view.pods)
            for new_pod in plan.create:
                self.store.create(new_pod)
                log.info(
                    "deployment %s/%s: created pod %s",
                    deploy.metadata.namespace,
                    deploy.metadata.name,
                    new_pod["metadata"]["name"],
                )
            for victim in plan.delete:
                self._delete_pod(victim, f"deployment {deploy.metadata.name} scaled or rolled")
            self._write_status(
                "Deployment", deploy.metadata.namespace, deploy.metadata.name, plan.status
            )
        for orphan in orphans(view.pods, {d.metadata.uid for d in view.deployments}):
            self._delete_pod(orphan, "its Deployment was deleted")

    def _delete_pod(self, pod: Pod, why: str) -> None:
        if self.store.delete("Pod", pod.metadata.namespace, pod.metadata.name) is not None:
            log.info("deleted pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, why)

    def _schedule(self, view: ClusterView) -> None:
        bindings, unschedulable = schedule(view.pods, self.nodes)
        for pod, reason in unschedulable:
            log.warning(
                "pod %s/%s unschedulable: %s", pod.metadata.namespace, pod.metadata.name, reason
            )
        for pod, node in bindings:
            obj = self.store.get("Pod", pod.metadata.namespace, pod.metadata.name)
            if obj is None:
                continue
            obj["spec"]["nodeName"] = node
            try:
                self.store.update(obj)
                log.info("bound pod %s/%s to %s", pod.metadata.namespace, pod.metadata.name, node)
            except (Conflict, NotFound):
                pass  # changed meanwhile: the next round sees it

    def _endpoint_slices(self, view: ClusterView) -> None:
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for svc in view.services:
            for slc in desired_slices(svc, view.pods):
                wanted[(slc["metadata"]["namespace"], slc["metadata"]["name"])] = slc
        for slc in wanted.values():
            self.store.apply(slc)
        for existing in view.slices:
            meta = existing["metadata"]
            managed = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
            if managed and (meta["namespace"], meta["name"]) not in wanted:
                self.store.delete("EndpointSlice", meta["namespace"], meta["name"])

    def _write_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        try:
            self.store.update_status(kind, ns, name, status)
        except NotFound:
            pass


class SystemProcesses:
    """Restarts the lab's node agents, waypoints, DNS servers and relay when they exit, as the
    kubelet restarts a DaemonSet's pods, with back-off for crash loops (agent.lab.restart).
    Never the controller itself. The back-off shows in the log and in `tulle lab status`."""

    def __init__(self, paths: LabPaths, policy: RestartPolicy = DEFAULT_RESTART_POLICY):
        self.paths = paths
        self.policy = policy
        self.states: dict[str, RestartState] = {}
        self.due: dict[str, float] = {}  # role -> monotonic time of its pending restart
        self.next_check = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_INTERVAL
        changed = False
        for rec in procs.load_records(self.paths.procs):
            if rec.role == "controller" or procs.is_alive(rec):
                continue
            if rec.role not in self.due:
                self._exited(rec, now)
                changed = True
            if now >= self.due[rec.role]:
                del self.due[rec.role]
                procs.spawn(rec.role, rec.argv, log=Path(rec.log), record_dir=self.paths.procs)
                changed = True
        if changed:
            self._publish(now)

    def _exited(self, rec: procs.ProcRecord, now: float) -> None:
        ran_for = procs.uptime(rec)
        state, delay = on_exit(self.states.get(rec.role, RestartState()), ran_for, self.policy)
        self.states[rec.role] = state
        self.due[rec.role] = now + delay
        when = "now" if delay == 0 else f"in {delay:.0f}s (back-off: {state.crashes} quick exits)"
        log.warning(
            "%s (pid %d) exited after %.1fs: restarting it %s (restart %d)",
            rec.role,
            rec.pid,
            ran_for,
            when,
            state.restarts,
        )

    def _publish(self, now: float) -> None:
        """What `tulle lab status` shows: restarts and any pending back-off, per role."""
        write_json_atomic(
            self.paths.health / RESTARTS_FILE,
            {
                role: {
                    "restarts": state.restarts,
                    "crashes": state.crashes,
                    "restartAt": time.time() + max(0.0, self.due[role] - now)
                    if role in self.due
                    else None,
                }
                for role, state in self.states.items()
            },
        )


class ControlLoop:
    """One lab controller round at a time. Store errors never tear pods down: a round that
    fails keeps every running pod, logs, backs off (capped, jittered) and tries again; only
    a listing that succeeded tells the kubelet which pods to run."""

    def __init__(
        self,
        store: Store,
        kubelet: Kubelet,
        controller: Controller,
        gateways: GatewayController,
        backoff: Backoff = STORE_BACKOFF,
    ) -> None:
        self.store = store
        self.kubelet = kubelet
        self.controller = controller
        self.gateways = gateways
        self.backoff = backoff
        self.models = ModelCache()
        self.seen = -1  # the revision last reconciled in full
        self.failures = 0

    def step(self) -> float:
        """Run one round; return the seconds to wait before the next."""
        errors: list[Exception] = []
        for part in (self._sync, self.kubelet.tick):
            try:
                part()
            except Exception as part_error:
                errors.append(part_error)
        if not errors:
            self.failures = 0
            return TICK
        self.failures += 1
        delay = max(TICK, self.backoff.delay(self.failures))
        for err in errors:
            if is_transient(err):
                log.warning(
                    "store error (%s: %s): pods keep running; retrying in %.2fs (failure %d)",
                    type(err).__name__,
                    err,
                    delay,
                    self.failures,
                )
            else:
                log.error(
                    "controller round failed; retrying in %.2fs (failure %d)",
                    delay,
                    self.failures,
                    exc_info=err,
                )
        return delay

    def _sync(self) -> None:
        revision = self.store.revision()
        if revision == self.seen:
            return
        objs, listed = self.store.list(WATCHED)
        view = decode(objs, self.models)
        failed: Exception | None = None
        try:
            self.controller.reconcile(view)
            self.gateways.reconcile(objs, view.services)
        except Exception as err:
            failed = err  # the kubelet still gets this complete view; reconcile is retried
        self.kubelet.sync(view.pods)
        if failed is not None:
            raise failed
        self.seen = listed


def run(name: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s controller %(levelname)s %(message)s"
    )
    paths = LabPaths.for_lab(name)
    plan = load_plan(paths)
    if plan is None:
        log.error("lab %s has no lab.json; is it up?", name)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Store(paths.store) as store:
        kubelet = Kubelet(plan, paths, store)
        controller = Controller(store, [n.name for n in plan.nodes])
        loop = ControlLoop(store, kubelet, controller, GatewayController(store))
        # A thread of its own: a slow or locked store never delays restarting a waypoint.
        supervisor = threading.Thread(
            target=supervise, args=(SystemProcesses(paths), stop), name="supervisor", daemon=True
        )
        supervisor.start()
        log.info("controller for lab %s started with nodes %s", name, controller.nodes)
        try:
            while not stop.is_set():
                stop.wait(loop.step())
        finally:
            stop.set()
            supervisor.join(timeout=2.0)
            log.info("stopping: tearing down pods")
            kubelet.shutdown()
    return 0


def supervise(system: SystemProcesses, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            system.tick()
        except Exception:
            log.exception("supervising system processes failed; retrying")
        stop.wait(CHECK_INTERVAL / 2)
