"""The real agent with a timeline: ``python -m bench.control.fstimeline agent ...`` runs
``agent.cli.node`` as it is, after wrapping the steps of its first sync (as their modules
are imported, so the import order and timing stay the agent's own):

- spans: start and end (seconds since the process started, as ``first_sync_s`` counts),
  wall, the CPU of the calling thread (``time.thread_time``) and its time runnable on a run
  queue without a core (schedstat) of the BCC thread's steps
  (``import bcc``, the compile cache's hash and adoption, BCC's compile, each program's
  verifier load, the record, the post-compile trim, the attach), each list, the first
  resync and its map writes;
- every 50 ms, each thread's CPU seconds and run-queue wait so far (/proc/self/task/*/stat
  and schedstat, named after the Python thread when there is one): who held the cores.

It writes the JSON to ``FSTIMELINE_OUT`` once the first sync is done (bench.control.firstsync
``--timeline`` reads it). A measuring tool: nothing of it runs in the agent otherwise.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")
_SPANS: list[dict[str, Any]] = []
_SAMPLES: list[dict[str, Any]] = []
_LOCK = threading.Lock()


def _boot_ticks() -> int:
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    return int(fields[19])


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


# Process start as CLOCK_MONOTONIC (uptime and monotonic agree to a few ms here, as
# agent.procfs.seconds_since assumes).
_ORIGIN = time.monotonic() - (_uptime() - _boot_ticks() / _TICK)


def age() -> float:
    return round(time.monotonic() - _ORIGIN, 4)


def _run_delay() -> float:
    """Seconds the calling thread waited on a run queue (runnable, no core) so far."""
    return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9


def span(name: str, fn: Callable[..., Any], label: Callable[..., str] | None = None
         ) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu, waited = age(), time.thread_time(), _run_delay()
        try:
            return fn(*args, **kwargs)
        finally:
            row: dict[str, Any] = {"span": name + (f" {label(*args, **kwargs)}" if label else ""),
                   "thread": threading.current_thread().name, "start": start, "end": age(),
                   "cpu_s": round(time.thread_time() - cpu, 4),
                   "runq_s": round(_run_delay() - waited, 4)}
            row["wall_s"] = round(row["end"] - start, 4)
            with _LOCK:
                _SPANS.append(row)
    timed.__wrapped__ = fn  # type: ignore[attr-defined]
    return timed


def _thread_cpu() -> dict[str, list[float]]:
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        tid = int(task.name)
        comm = (task / "comm").read_text().strip() if tid not in names else names[tid]
        try:
            runq = int((task / "schedstat").read_text().split()[1]) / 1e9
        except OSError:
            runq = 0.0
        out[f"{comm}:{tid}"] = [round((int(fields[11]) + int(fields[12])) / _TICK, 2),
                                round(runq, 3)]
    return out


def _sampler(stop: threading.Event) -> None:
    while not stop.wait(0.05):
        _SAMPLES.append({"at": age(), "threads": _thread_cpu()})


def _kind(informer: Any) -> str:
    return str(informer._kind)  # noqa: SLF001


def _prog(_bpf: Any, prog: str, *_args: Any) -> str:
    return prog


# module -> (dotted attribute, span name, label of a call): the steps worth a span.
WRAPPED: dict[str, list[tuple[str, str, Callable[..., str] | None]]] = {
    "agent.datapath.programs": [("templates.inputs", "hash inputs", None),
                                ("templates.adopt", "adopt (templates.adopt)", None),
                                ("_remember", "record the compile", None)],
    "agent.datapath.bpf_loader": [("load_program", "BCC compile (BPF(text=...))", None),
                                  ("load_fn", "verifier load", _prog)],
    "agent.bcc_thread": [("after_compile", "after_compile (trim, drop pages)", None),
                         ("load_datapath", "load_datapath (all of it)", None)],
    "agent.datapath.controller": [
        ("DatapathController.attach", "attach", None),
        ("DatapathController.resync", "first resync (plan, wait, writes)", None)],
    "agent.datapath.applier": [("Applier.apply", "map writes (Applier.apply)", None)],
    "agent.kube.informer": [("Informer._list", "list", _kind)],
}
WATCHED = {*WRAPPED, "bcc"}


def _patch(module: ModuleType) -> None:
    """Wrap the module's steps as it finishes its import."""
    for dotted, name, label in WRAPPED.get(module.__name__, []):
        *path, attr = dotted.split(".")
        owner: Any = module
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, attr, span(name, getattr(owner, attr), label))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in WATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module  # type: ignore[attr-defined]

        def patched(module: ModuleType) -> None:
            start = age()
            exec_module(module)
            if fullname == "bcc":
                _SPANS.append({"span": "import bcc", "thread": threading.current_thread().name,
                               "start": start, "end": age(), "cpu_s": None,
                               "wall_s": round(age() - start, 4)})
            else:
                _patch(module)

        loader.exec_module = patched  # type: ignore[method-assign]
        return spec


def _writer(out: Path, stop: threading.Event) -> None:
    """Wait for the first sync (the controller's first resync span), then write."""
    while not any(s["span"].startswith("first resync") for s in list(_SPANS)):
        time.sleep(0.02)
    time.sleep(0.1)
    stop.set()
    out.write_text(json.dumps({"spans": sorted(_SPANS, key=lambda s: s["start"]),
                               "samples": _SAMPLES}, indent=1))


def summarize(timeline: dict[str, Any]) -> str:
    """The spans by start time, then each thread's CPU and run-queue wait at the last sample."""
    lines = ["| span | thread | start s | end s | wall s | its thread's CPU s "
             "| runnable, no core s |",
             "|---|---|---|---|---|---|---|"]
    for row in timeline.get("spans", []):
        lines.append(f"| {row['span']} | {row['thread']} | {row['start']} | {row['end']} "
                     f"| {row['wall_s']} | {row['cpu_s']} | {row.get('runq_s', '')} |")
    samples = timeline.get("samples") or []
    if samples:
        last = samples[-1]
        lines += ["", f"Threads at {last['at']} s (CPU s, runnable without a core s):", ""]
        busy = sorted(last["threads"].items(), key=lambda kv: -kv[1][0])
        lines += [f"- {name}: {cpu} / {runq}" for name, (cpu, runq) in busy if cpu or runq]
    return "\n".join(lines)


def main() -> None:
    sys.meta_path.insert(0, _Finder())
    stop = threading.Event()
    threading.Thread(target=_sampler, args=(stop,), name="fstimeline", daemon=True).start()
    out = os.environ.get("FSTIMELINE_OUT")
    if out:
        threading.Thread(target=_writer, args=(Path(out), stop), name="fstimeline-out",
                         daemon=True).start()
    from agent.cli.node import node_cli

    sys.argv[0] = "tulle-node"
    node_cli()


if __name__ == "__main__":
    main()
