"""The ``stages`` mode of bench/control/firstsync.py, run in a fresh child process: what the
agent's first sync runs, in the daemon's order, each stage timed (wall, its thread's CPU, when
it ended, RSS and peak RSS after it). See firstsync's docstring for the switches.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NODE = "node1"


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> float:
    """CPU seconds of the calling thread: stages on the main thread overlap the BCC thread's."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stages:
    """Times named stages; ``extra`` time measured inside a stage is reported beside it.
    ``at`` is when a stage ended, in seconds since the harness started (stages of the BCC
    thread overlap the main thread's)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.origin = time.monotonic()
        self.lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        row: dict[str, Any] = {"stage": name}
        wall, cpu = time.monotonic(), _cpu()
        yield row
        row["s"] = round(time.monotonic() - wall, 3)
        row["cpu_s"] = round(_cpu() - cpu, 3)
        row["at"] = round(time.monotonic() - self.origin, 3)
        row["rss_mb"] = round(_status_mb("VmRSS"), 1)
        row["anon_mb"] = round(_status_mb("RssAnon"), 1)  # the rest: file-backed (libbcc)
        row["hwm_mb"] = round(_status_mb("VmHWM"), 1)
        with self.lock:
            self.rows.append(row)
        print(f"  {name:<38} {row['s']:>7.3f} s  cpu {row['cpu_s']:>7.3f} s  "
              f"at {row['at']:>6.3f} s  rss {row['rss_mb']:>6.1f} MB "
              f"(anon {row['anon_mb']:>6.1f})  peak {row['hwm_mb']:>6.1f} MB",
              file=sys.stderr, flush=True)


class Timer:
    """Accumulated time of calls to one wrapped function."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - started
                self.calls += 1
        return timed


# -- the stages (run in a fresh process) --------------------------------------------------


def run_stages(kubeconfig: str, pin_dir: str | None, trace: bool) -> dict[str, Any]:
    """The daemon's order (agent/daemon.py, agent/bcc_thread.py): the BCC thread compiles and
    loads the datapath (and the tracer: agent.bcc_thread.order) while the main thread lists,
    decodes and plans; the map writes wait for the load."""
    stages = Stages()
    with stages.stage("python start"):
        pass
    with stages.stage("imports"):
        import agent.daemon as daemon
        from agent import bcc_thread
        from agent.datapath import controller as ctl
        from agent.datapath import services as svcs
        from agent.flows.ingest import FlowIngest
        from agent.flows.store import FlowRing
        from agent.kube import informer as inf
        from agent.kube.source import connect
    ingest = FlowIngest(FlowRing(65_535), ())
    datapath = ctl.DatapathController(NODE, None, ingest)
    # This harness always compiles (no compile cache): the daemon's order for such a start.
    fresh = bcc_thread.order(compiles=True)
    order = os.environ.get("FSBENCH_TRACE_ORDER") or (
        "after-sync" if fresh.tracer_after_sync else "after-load")
    beside = os.environ.get("FSBENCH_PLAN_BESIDE", str(fresh.plan_beside_compile)) == "True"
    compiled = threading.Event()
    loader = None
    if pin_dir is None:
        from bench.control.replan import NoMaps, stub_map_writes

        stub = stub_map_writes([])
        stub.start()
        datapath.attach(NoMaps())  # type: ignore[arg-type]
        compiled.set()
    else:
        loader = threading.Thread(target=_bcc_thread, name="bcc", daemon=True,
                                  args=(stages, datapath, ingest, pin_dir, trace, order,
                                        compiled))
        loader.start()
    client = connect(kubeconfig)
    agent = daemon.Agent(NODE, client)
    send_timer, decode_timer = Timer(), Timer()
    inf._decode_json = decode_timer.wrap(inf._decode_json)  # type: ignore[attr-defined]
    from agent.kube.gcpause import Hold

    hold = Hold()  # as the daemon's run() holds one from its start to its first sync
    for informer, kind in zip(agent.source.informers, agent.source.state.kinds, strict=True):
        generic = client._client  # noqa: SLF001 - what the informer sends through
        generic.send = send_timer.wrap(generic.__class__.send.__get__(generic))  # type: ignore[method-assign]
        before_send, before_decode = send_timer.total, decode_timer.total
        with stages.stage(f"list {kind}") as row:
            informer._list()  # noqa: SLF001 - one full list, as the informer's run() starts
            row["http_s"] = round(send_timer.total - before_send, 3)
            row["json_s"] = round(decode_timer.total - before_decode, 3)
            row["objects"] = len(informer.cache.objects)
    objects = list(agent.source.state.objects.values())
    maglev = Timer()
    svcs.maglev_slots = maglev.wrap(svcs.maglev_slots)  # type: ignore[attr-defined]
    import gc

    with ctl._no_gc():  # noqa: SLF001 - as resync runs it
        with stages.stage("decode models") as row:
            resources = datapath.models.decode_all(objects, ctl.WATCHED_KINDS)
            row["objects"] = len(resources)
        if not beside:
            with stages.stage("wait for the BCC compiles (plan not beside them)"):
                compiled.wait()
        with stages.stage("plan (services, endpoints, policy)") as row:
            datapath.planner.reset(resources)
            desired = datapath.planner.desired()
            row["maglev_s"] = round(maglev.total, 3)
            row["maglev_tables"] = maglev.calls
        with stages.stage("flow enricher index"):
            datapath.index = ctl.endpoint_index(datapath.planner.view(), desired, NODE)
            datapath.planner.index_stale = False
        with stages.stage("wait for the eBPF load"):
            datapath.attached.wait()
            datapath.applier  # noqa: B018 - raises if the load failed
        with stages.stage("kernel map writes" if pin_dir else "map writes (stubbed)") as row:
            cpu = _process_cpu()
            datapath.applier.apply(desired)
            row["process_cpu_s"] = round(_process_cpu() - cpu, 3)
    with stages.stage("gc.freeze, collector back on"):
        gc.freeze()
        hold.release()
    first_sync = stages.rows[-1]["at"]
    if loader is not None:
        loader.join()
    rows = sorted(stages.rows, key=lambda r: r["at"])
    return {"rows": rows, "order": order, "plan_beside_compiles": beside,
            "services": len(datapath.applier.applied.slots), "first_sync_s": first_sync,
            "peak_rss_mb": round(_status_mb("VmHWM"), 1)}


def _bcc_thread(stages: Stages, datapath: Any, ingest: Any, pin_dir: str, trace: bool,
                order: str, compiled: threading.Event) -> None:
    """As agent.bcc_thread.DatapathLoad runs it, each compile a stage of its own."""
    from agent.datapath.native import malloc_trim

    if trace and order == "before-load":
        tracer_stage(stages, datapath, ingest, pin_dir)
    with stages.stage("[bcc thread] eBPF load (compile, pin maps)") as row:
        from agent.datapath.programs import load_datapath

        dp = load_datapath(Path(pin_dir))
        malloc_trim()
        datapath.attach(dp)
        row["note"] = "then malloc_trim, attach"
    if trace and order == "after-load":
        tracer_stage(stages, datapath, ingest, pin_dir)
    compiled.set()
    if trace and order == "after-sync":
        while not any(r["stage"].startswith("gc.freeze") for r in list(stages.rows)):
            time.sleep(0.05)
        tracer_stage(stages, datapath, ingest, pin_dir)


def tracer_stage(stages: Stages, datapath: Any, ingest: Any, pin_dir: str | None) -> None:
    with stages.stage("[bcc thread] tracer compile") as row:
        from agent.datapath.features import feature_probe
        from agent.datapath.native import malloc_trim
        from agent.tracing.tracer import Tracer, plan_hooks

        tracer = Tracer.load(plan_hooks(feature_probe()))
        row["hooks"] = len(tracer.plan.hooks)
        tracer.close()  # detaches (it attaches its programs by fd)
        malloc_trim()
