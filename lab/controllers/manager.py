"""The lab's control plane process: Deployment, DaemonSet, scheduler, EndpointSlice, GC and
ServiceAccounts controllers, the Gateway API status controller, plus the kubelet for every lab node.

A Kubernetes client like any other: one informer per watched kind (list, then watch) feeds a
LiveView; whenever the view changes, decode it and run a round (lab.controllers.reconcile:
plans from the pure controllers in lab.controllers), writing the differences through the
API (create/delete Pods, bind with an update at the Pod's resourceVersion, create/update
EndpointSlices, status subresources).
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from agent.kube.backoff import Backoff
from agent.model.cache import ModelCache
from controlplane.controller import LEASE_NAME
from controlplane.leader import ElectionConfig, KubeLeases, LeaderElection
from identity.system import SYSTEM_NAMESPACE
from lab.components import from_manifests
from lab.controllers.endpointslice import MANAGED_BY, MANAGED_BY_LABEL
from lab.controllers.events import Recorder
from lab.controllers.gateways import KINDS as GATEWAY_KINDS
from lab.controllers.gateways import GatewayController, check_gateway_api
from lab.controllers.gatewayservices import GatewayServiceController
from lab.controllers.ingresses import KINDS as INGRESS_KINDS
from lab.controllers.ingresses import IngressController
from lab.controllers.loadbalancer import KINDS as LB_KINDS
from lab.controllers.loadbalancer import LoadBalancerController
from lab.controllers.reconcile import Controller, decode
from lab.controllers.serviceaccounts import KINDS as SA_KINDS
from lab.controllers.serviceaccounts import ServiceAccountController
from lab.controlplane import controller_kubeconfig
from lab.kubeapi import API_BACKOFF, ApiWriter, Informers, connect
from lab.kubeapi import retryable as is_transient
from lab.kubelet import Kubelet
from lab.labstatus import load_plan
from lab.liveview import LiveView
from lab.seed import register_node
from lab.state import LabPaths
from lab.supervisor import SystemProcesses, supervise
from lab.topology import LabPlan

log = logging.getLogger("tulle.controller")
FIELD_MANAGER = "tulle-lab-controller"
WATCHED = tuple(dict.fromkeys((
    "Deployment", "DaemonSet", "Pod", "Service", "EndpointSlice",
    *GATEWAY_KINDS, *INGRESS_KINDS, *LB_KINDS, *SA_KINDS,
)))
TICK = 0.1
class ControlLoop:
    """One lab controller round at a time. API errors never tear pods down: a round that
    fails keeps every running pod, logs, backs off (capped, jittered) and tries again. The
    kubelet hears of pods only once every kind has been listed in full; while the API server
    is away the view keeps what it last saw, so running pods stay."""

    def __init__(
        self,
        view: LiveView,
        synced: Callable[[], bool],
        kubelet: Kubelet,
        controller: Controller,
        gateways: GatewayController,
        backoff: Backoff = API_BACKOFF,
        ingresses: IngressController | None = None,
        lbipam: LoadBalancerController | None = None,
        leading: Callable[[], bool] = lambda: True,
        gateway_services: GatewayServiceController | None = None,
        service_accounts: ServiceAccountController | None = None,
    ) -> None:
        self.view = view
        self.synced = synced
        self.kubelet = kubelet
        self.controller = controller
        self.gateways = gateways
        self.ingresses = ingresses
        self.lbipam = lbipam  # None: Services' addresses are another's (Gateways still get theirs)
        self.gateway_services = gateway_services  # None: Gateways get no Service (no address)
        self.service_accounts = service_accounts  # None: namespaces get no `default` account
        # The Gateway, Ingress and LoadBalancer status work runs only while this holds the
        # tulle-controller Lease (controlplane/leader), which a tulle-controller run against
        # the lab contends for too; Deployments, scheduling, slices, each
        # namespace's `default` ServiceAccount and pods always run.
        self.leading = leading
        self.led = False  # as of the last round: a new term starts with a full round
        self.backoff = backoff
        self.models = ModelCache()
        self.seen = -1  # the view generation last reconciled in full
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
                    "API error (%s: %s): pods keep running; retrying in %.2fs (failure %d)",
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
        if not self.synced():
            return  # no full listing yet: nothing to tell the kubelet
        leading = self.leading()
        if leading and not self.led:
            self.seen = -1  # what changed while another led was not acted on here
        self.led = leading
        generation, changed = self.view.take_changes()
        if generation == self.seen:
            return
        if self.seen >= 0 and all(self._not_ours(kind, key) for kind, key in changed):
            # Only EndpointSlices no controller part reads changed (a user's or another
            # controller's): a round would decode and replan the whole cluster for nothing.
            self.seen = generation
            return
        objs = self.view.snapshot()
        view = decode(objs, self.models)
        failed: Exception | None = None
        try:
            self.controller.reconcile(view)
            if self.service_accounts is not None:
                self.service_accounts.reconcile(objs)
            if leading:
                if self.gateway_services is not None:
                    self.gateway_services.reconcile(objs, view.services)
                lb = None if self.lbipam is None else self.lbipam.reconcile(objs, view.services)
                self.gateways.reconcile(objs, view.services, lb)
                if self.ingresses is not None:
                    self.ingresses.reconcile(objs, view.services, lb)
        except Exception as err:
            failed = err  # the kubelet still gets this complete view; reconcile is retried
        self.kubelet.sync(view.pods)
        if failed is not None:
            self.seen = -1  # the next round is a full one, whatever changes by then
            raise failed
        self.seen = generation

    def _not_ours(self, kind: str, key: tuple[str, str]) -> bool:
        """An EndpointSlice this controller neither wants nor manages."""
        if kind != "EndpointSlice" or key in self.controller.wanted_slices:
            return False
        obj = self.view.get(kind, *key)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return labels.get(MANAGED_BY_LABEL) != MANAGED_BY


def register_nodes(api: ApiWriter, plan: LabPlan, stop: threading.Event) -> None:
    """Register every lab node's Node, retrying (with back-off) while the API is away."""
    pending = list(plan.nodes)
    failures = 0
    while pending and not stop.is_set():
        try:
            register_node(api, pending[0])
        except Exception as err:
            failures += 1
            delay = API_BACKOFF.delay(failures)
            log.warning(
                "cannot register node %s (%s); retrying in %.2fs", pending[0].name, err, delay
            )
            stop.wait(delay)
            continue
        log.info("registered node %s", pending.pop(0).name)
        failures = 0


def _ca_pem(kubeconfig: Path) -> str:
    """The CA of ``kubeconfig``'s first cluster (a file, as the lab writes it)."""
    import yaml

    config = yaml.safe_load(kubeconfig.read_text()) or {}
    cluster = (config.get("clusters") or [{}])[0].get("cluster") or {}
    ca = Path(cluster.get("certificate-authority") or "")
    return (ca if ca.is_absolute() else kubeconfig.parent / ca).read_text()


def run(name: str, kubeconfig: Path | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s controller %(levelname)s %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # not a line per request
    paths = LabPaths.for_lab(name)
    plan = load_plan(paths)
    if plan is None:
        log.error("lab %s has no lab.json; is it up?", name)
        return 1
    kubeconfig = kubeconfig or controller_kubeconfig(paths)
    if not kubeconfig.exists():
        log.error("no kubeconfig at %s; start the lab with `tulle lab up`", kubeconfig)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A thread of its own: a slow or absent API server never delays restarting a waypoint.
    supervisor = threading.Thread(
        target=supervise, args=(SystemProcesses(paths), stop), name="supervisor", daemon=True
    )
    supervisor.start()
    view = LiveView(WATCHED)
    # Watches hold their connections open; writes get a client of their own.
    informers = Informers(connect(kubeconfig, FIELD_MANAGER), view).start()
    api = ApiWriter(connect(kubeconfig, FIELD_MANAGER), view)
    # env from Secrets and ConfigMaps reads the watch cache (both kinds are watched for
    # the Gateway controller), as a kubelet's Watch-based secret and ConfigMap managers do.
    # A pod's projected ServiceAccount token: a TokenRequest as the controller's account
    # (the kubelet's `serviceaccounts/token: create`), the CA its kubeconfig trusts.
    kubelet = Kubelet(plan, paths, api, events=Recorder(api), lookup=view.get,
                      tokens=api.request_token, ca_pem=_ca_pem(kubeconfig))
    controller = Controller(api, [n.name for n in plan.nodes])
    gateway_api = check_gateway_api(connect(kubeconfig, FIELD_MANAGER))
    election = LeaderElection(
        KubeLeases(connect(kubeconfig, FIELD_MANAGER)), SYSTEM_NAMESPACE, LEASE_NAME,
        ElectionConfig(f"{FIELD_MANAGER}_{uuid.uuid4()}"),
    )
    # Installed from the manifests, the tulle-controller Deployment writes Gateway, Ingress
    # and LoadBalancer status: this one does not even contend for the Lease (either could win).
    status_work = not from_manifests(paths)
    loop = ControlLoop(
        view, informers.synced, kubelet, controller, GatewayController(api, gateway_api),
        ingresses=IngressController(api, Recorder(api)),
        lbipam=LoadBalancerController(api, Recorder(api)),
        leading=election.leading if status_work else (lambda: False),
        gateway_services=GatewayServiceController(api),
        service_accounts=ServiceAccountController(api),
    )
    log.info("controller for lab %s started with nodes %s", name, controller.nodes)
    # releases the Lease when ``stop`` is set
    elected = election.start(stop) if status_work else None
    try:
        register_nodes(api, plan, stop)
        while not stop.is_set():
            stop.wait(loop.step())
    finally:
        stop.set()
        informers.stop()
        if elected is not None:
            elected.join(timeout=2.0)
        supervisor.join(timeout=2.0)
        log.info("stopping: tearing down pods")
        kubelet.shutdown()
    return 0
