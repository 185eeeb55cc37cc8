"""Ingestion: flow events per second the agent's own consumer takes in on one core.

The datapath is loaded into a private pin dir (`PIN_DIR`), an endpoint is written at ifindex 1
and `tulle_from_pod` is pinned there for the producer, a separate process on `PRODUCER_CPU`
(see `producer`). This process, pinned to `CONSUMER_CPU`, runs `DatapathController.run_events`
itself: the agent's `EventReader` loop (BCC `open_ring_buffer` on `flow_events_v1`, poll with
the drain interval, consume, `drain`: resolve + count + `FlowIngest.put_deferred` into a
FlowRing and FlowMetrics, the lost-event report). Variants swap the drain step or the
observers to show where the time goes. Loss is the per-CPU sum of `events_lost_v1` over the
run, and every run checks produced == consumed + lost. Before the runs, the per-event costs
are measured in process (`bench.observe.stepcosts`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agent.datapath import drop_reasons, maps
from agent.datapath.controller import DatapathController
from agent.datapath.flowevents import EVENT_DROP
from agent.datapath.native import obj_pin
from agent.datapath.programs import Datapath, load_datapath
from agent.flows.ingest import FlowIngest, FlowObserver
from agent.flows.store import FlowRing
from agent.metrics import FlowMetrics, MetricsConfig
from bench.observe import workload
from bench.observe.bccring import Count, close_ring
from bench.observe.pyspy import Frame, inclusive, top_frames
from bench.observe.stepcosts import StepCost, emit_cost, step_costs

PIN_DIR = Path("/sys/fs/bpf/tulle/benchobs/n1")
PRODUCER_CPU, CONSUMER_CPU = 0, 1
PROG_PIN = "bench_from_pod"
# Where the agent's per-event steps live, for the profile's inclusive shares.
STEPS = {
    "MappedRingBuffer.read": "MappedRingBuffer.read (datapath/ringbuf.py)",
    "EventReader.drain": "EventReader.drain (datapath/eventreader.py)",
    "FlowRing.put_deferred": "FlowRing.put_deferred (flows/store.py)",
    "FlowMetrics.observe_counts": "FlowMetrics.observe_counts (metrics/flowmetrics.py)",
}
CONSUMER_FRAME = "EventReader.run (datapath/eventreader.py)"
Progress = Callable[[str], None]
EventCallback = Callable[[Any, Any, int], None]


class IngestError(RuntimeError):
    """The ingestion benchmark cannot go on; the message says why."""


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    metrics: bool = True  # FlowMetrics among the FlowIngest observers
    callback: str = "agent"  # agent: EventReader.drain; or count (read, then count only)
    rate: float = 0.0  # offered events/s; 0: the producer runs flat out


FULL = Variant("full", "agent reader: copy -> resolve + count -> ring (deferred) + FlowMetrics")
VARIANTS = (
    FULL,
    Variant("no-metrics", "metrics off: copy -> resolve -> ring (deferred)", metrics=False),
    Variant("read-only", "read only: mapped ring -> records, counted, nothing stored",
            metrics=False, callback="count"),
)


@dataclass
class IngestRun:
    variant: Variant
    seconds: float  # the producer's run time
    produced: int
    consumed: int  # flows that reached the consumer's end (ring, or the counter)
    window_consumed: int  # consumed by the time the producer had finished
    window_s: float  # producer start -> producer seen finished
    lost: int  # events_lost_v1, per-CPU sum, over the run
    lost_reported: int  # what the controller recorded as lost (FlowRing lost counts)
    producer_calls: int
    consumer_cpu_s: float  # CPU time of the consuming thread over the run
    consumer_wait_s: float  # time it was runnable but waited for its core (schedstat)
    wall_s: float  # go -> drained
    profile: list[Frame] = field(default_factory=list)
    profile_samples: int = 0
    profile_steps: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.window_consumed / self.window_s if self.window_s > 0 else 0.0

    @property
    def rate_per_cpu_s(self) -> float:
        """Events per CPU-second of the consumer: its rate had it owned the core."""
        return self.consumed / self.consumer_cpu_s if self.consumer_cpu_s > 0 else 0.0

    @property
    def core_share(self) -> float:
        """How much of its core the consumer got (other processes share the machine)."""
        return self.consumer_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.produced if self.produced else 0.0

    @property
    def unaccounted(self) -> int:
        return self.produced - self.consumed - self.lost

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant.key, "title": self.variant.title,
            "offered_rate": self.variant.rate or None, "seconds": round(self.seconds, 3),
            "produced": self.produced, "consumed": self.consumed,
            "consumed_per_s": round(self.rate), "window_s": round(self.window_s, 3),
            "consumed_per_consumer_cpu_s": round(self.rate_per_cpu_s),
            "consumer_cpu_s": round(self.consumer_cpu_s, 3),
            "consumer_core_share": round(self.core_share, 3),
            "consumer_runqueue_wait_s": round(self.consumer_wait_s, 3),
            "consumer_wall_s": round(self.wall_s, 3),
            "lost": self.lost, "loss_pct": round(self.loss_pct, 3),
            "lost_reported_by_agent": self.lost_reported, "unaccounted": self.unaccounted,
            "producer_calls": self.producer_calls,
            "profile_samples": self.profile_samples,
            "profile_top": [dataclasses.asdict(f) for f in self.profile],
            "profile_steps_pct": self.profile_steps,
        }


def schedstat() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of the calling thread."""
    text = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").read_text()
    run_ns, wait_ns, _ = text.split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def core_share(cpu: int, seconds: float = 1.0) -> float:
    """The share of core `cpu` a busy loop gets now (1.0 on an idle core): how much other
    processes leave us. Restores the caller's affinity."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        run0, _ = schedstat()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            pass
        return (schedstat()[0] - run0) / (time.monotonic() - started)
    finally:
        os.sched_setaffinity(0, saved)


@dataclass
class IngestBench:
    seconds: float
    diag_seconds: float
    paced_rate: float
    progress: Progress
    profile: bool = True
    runs: list[IngestRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[StepCost] = field(default_factory=list)
    dp: Datapath | None = None
    load_s: float = 0.0
    sample: bytes = b""  # one ring-buffer record, as the kernel wrote it
    idle_share: dict[str, float] = field(default_factory=dict)  # busy-loop share per core
    profile_raw: str = ""  # py-spy's collapsed stacks of the profiled run
    emit: dict[str, Any] = field(default_factory=dict)  # in-kernel cost of emitting an event
    packet_hex: str = ""  # the synthetic packet

    # -- the whole part ------------------------------------------------------------------------
    def run(self) -> None:
        if (os.cpu_count() or 1) < 2:
            raise IngestError("needs two cores: one for the producer, one for the consumer")
        saved = os.sched_getaffinity(0)
        logging.getLogger("tulle.datapath").setLevel(logging.ERROR)  # "lost N events" per poll
        try:
            self.progress(f"ingestion: loading the datapath into {PIN_DIR}")
            started = time.monotonic()
            PIN_DIR.parent.mkdir(parents=True, exist_ok=True)
            self.dp = load_datapath(PIN_DIR)
            self.load_s = time.monotonic() - started
            dp = self.dp
            maps.write_endpoint(dp, workload.ENDPOINT_IFINDEX,
                                ipaddress.IPv4Address(workload.ENDPOINT_IP),
                                workload.ENDPOINT_IDENTITY, 0)
            obj_pin(dp.from_pod_fd, PIN_DIR / PROG_PIN)
            packet = workload.spoofed_packet()
            self.packet_hex = packet.hex()
            self.check_one_event(dp, packet)
            self.idle_share = {f"cpu{c}": round(core_share(c), 3)
                               for c in (PRODUCER_CPU, CONSUMER_CPU)}
            self.progress("  a busy loop gets " + ", ".join(
                f"{v:.0%} of {k}" for k, v in self.idle_share.items())
                + " right now (the rest goes to other processes)")
            os.sched_setaffinity(0, {CONSUMER_CPU})  # threads started from here inherit it
            self.emit = emit_cost(dp, packet)
            self.progress(f"  in the kernel: {self.emit['on_ns']} ns per run with the event, "
                          f"{self.emit['off_ns']} ns without (test-run means, median of "
                          f"{self.emit['rounds']})")
            self.steps = step_costs(dp, self.sample, packet)
            self.progress("  per-event cost by step (in process, no ring): " + ", ".join(
                f"{c.step} {c.us:.1f} us" for c in self.steps))
            paced = dataclasses.replace(
                FULL, key="paced", rate=self.paced_rate,
                title=f"agent consumer, producer paced at {self.paced_rate:,.0f} events/s")
            plan = [(FULL, self.seconds), (paced, self.seconds),
                    *[(v, self.diag_seconds) for v in VARIANTS[1:]]]
            for variant, secs in plan:
                self.runs.append(self.run_variant(variant, secs, packet))
            if self.profile:
                self.runs.append(self.run_variant(
                    dataclasses.replace(FULL, key="profiled", title="agent consumer under py-spy "
                                        "(200 Hz sampling from the producer's core)"),
                    self.diag_seconds, packet, profile=True))
        finally:
            os.sched_setaffinity(0, saved)
            if self.dp is not None:
                self.dp.close()
            shutil.rmtree(PIN_DIR, ignore_errors=True)
            try:
                PIN_DIR.parent.rmdir()  # benchobs/, when nothing else is in it
            except OSError:
                pass

    def check_one_event(self, dp: Datapath, packet: bytes) -> None:
        """One test run must give one DROP event with the expected reason."""
        from agent.datapath.testrun import TC_ACT_SHOT, SkBuff, test_run

        seen: list[Any] = []
        raw: list[bytes] = []

        def keep(_ctx: Any, data: Any, size: int) -> None:
            seen.append(dp.event(data))
            raw.append(ctypes.string_at(data, size))

        dp.table("flow_events_v1").open_ring_buffer(keep)
        ctx = SkBuff()
        ctx.ifindex = workload.ENDPOINT_IFINDEX
        result = test_run(dp.from_pod_fd, packet, repeat=1, ctx=ctx)
        dp.bpf.ring_buffer_consume()
        close_ring(dp)
        reasons = [drop_reasons.by_code(e.drop_reason).name for e in seen]
        if (result.retval != TC_ACT_SHOT or len(seen) != 1 or seen[0].type != EVENT_DROP
                or reasons != [workload.EXPECTED_REASON]):
            raise IngestError(f"the synthetic packet should give TC_ACT_SHOT and one DROP event "
                              f"{workload.EXPECTED_REASON}; got verdict {result.retval}, "
                              f"events {reasons}")
        self.sample = raw[0]

    # -- one run ---------------------------------------------------------------------------------
    def run_variant(self, variant: Variant, seconds: float, packet: bytes,
                    profile: bool = False) -> IngestRun:
        assert self.dp is not None
        dp = self.dp
        ring = FlowRing()
        observers: tuple[FlowObserver, ...] = ()
        if variant.metrics:
            observers = (FlowMetrics(MetricsConfig(), CollectorRegistry()),)
        controller = DatapathController(workload.NODE, dp, FlowIngest(ring, observers))
        controller.index = workload.endpoint_index()
        counter = Count()
        if variant.callback == "count":
            controller.events.drain = counter.count  # type: ignore[method-assign]

        def consumed() -> int:
            return counter.n if variant.callback == "count" else ring.stats().seen_flows

        lost_before = dp.events_lost()
        controller.events._lost_seen = lost_before
        close_ring(dp)
        argv = [sys.executable, "-m", "bench.observe.producer", "--prog", str(PIN_DIR / PROG_PIN),
                "--packet", packet.hex(), "--cpu", str(PRODUCER_CPU), "--seconds", str(seconds)]
        if variant.rate:
            argv += ["--rate", str(variant.rate), "--chunk", "1000"]
        producer = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=Path(__file__).resolve().parents[2])
        spy: subprocess.Popen[bytes] | None = None
        raw_profile = Path(tempfile.mkstemp(prefix="bench-observe-", suffix=".txt")[1])
        try:
            assert producer.stdin is not None and producer.stdout is not None
            if producer.stdout.readline().strip() != "ready":
                raise IngestError(f"the producer did not start: {producer.stdout.read()}")
            stop = threading.Event()
            window: dict[str, float] = {}

            def watch() -> None:
                producer.wait()
                window["t"] = time.monotonic()
                window["n"] = consumed()
                stop.set()

            producer.stdin.write("go\n")
            producer.stdin.flush()
            wall0, cpu0, (_, wait0) = time.monotonic(), time.thread_time(), schedstat()
            threading.Thread(target=watch, name="producer-watch", daemon=True).start()
            if profile:
                spy = self.start_pyspy(raw_profile, seconds)
            controller.run_events(stop)  # the agent's loop, on this core, until the producer ends
            wall, cpu = time.monotonic() - wall0, time.thread_time() - cpu0
            wait = schedstat()[1] - wait0
            out = producer.stdout.read().strip().splitlines()
            report = json.loads(out[-1]) if out else {}
            if "produced" not in report:
                raise IngestError(f"the producer failed: {report or 'no report'}")
            frames: list[Frame] = []
            samples = 0
            steps: dict[str, float] = {}
            if spy is not None:
                spy.wait(timeout=30)
                text = raw_profile.read_text(errors="replace")
                self.profile_raw = text
                frames, samples = top_frames(text, within=CONSUMER_FRAME)
                shares = inclusive(text, list(STEPS.values()), within=CONSUMER_FRAME)
                steps = {name: shares[frame] for name, frame in STEPS.items()}
                if not samples:
                    self.notes.append(f"py-spy recorded no samples (exit {spy.returncode})")
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
            if spy is not None and spy.poll() is None:
                spy.kill()
                spy.wait()
            raw_profile.unlink(missing_ok=True)
            controller.close_netlink()
        close_ring(dp)
        run = IngestRun(
            variant=variant, seconds=report["end"] - report["start"],
            produced=int(report["produced"]), consumed=consumed(),
            window_consumed=int(window["n"]), window_s=window["t"] - report["start"],
            lost=dp.events_lost() - lost_before,
            lost_reported=sum(ring.stats().lost.values()),
            producer_calls=int(report["calls"]), consumer_cpu_s=cpu, consumer_wait_s=wait,
            wall_s=wall,
            profile=frames, profile_samples=samples,
            profile_steps=steps,
        )
        self.progress(f"  {variant.key:<12} produced {run.produced:>11,}  consumed "
                      f"{run.consumed:>10,}  {run.rate:>9,.0f}/s  lost {run.lost:>11,} "
                      f"({run.loss_pct:.1f}%)  unaccounted {run.unaccounted};  "
                      f"{run.rate_per_cpu_s:,.0f} per consumer CPU-s, it got "
                      f"{run.core_share:.0%} of its core")
        if run.unaccounted:
            self.notes.append(f"{variant.key}: produced - consumed - lost = {run.unaccounted} "
                              "(should be 0)")
        return run

    def start_pyspy(self, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy")
        if exe is None:
            self.notes.append("py-spy not found (pip install py-spy into the venv): no profile")
            return None
        argv = [exe, "record", "--pid", str(os.getpid()), "--rate", "200", "--duration",
                str(max(1, int(seconds) - 1)), "--format", "raw", "--nolineno",
                "--output", str(out)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.sched_setaffinity(spy.pid, {PRODUCER_CPU})  # keep the consumer's core to itself
        except OSError:
            pass
        return spy
