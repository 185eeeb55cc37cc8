"""RTT sampling cost per keep-alive exchange: tcp_probe raw tracepoint against sock_ops RTT_CB.

    sudo PYTHONPATH=$PWD .venv/bin/python -m bench.sockops_ab [--exchanges 200000]
        [--rounds 3] [--variants a,b1,b2,c1,c2,d1,d2,e1,e2] [--out FILE.md]

No lab. In a network namespace it creates, a client process sends a 64-byte request and
waits for the server's 64-byte response, EXCHANGES times over one TCP_NODELAY loopback
connection, both pinned to one CPU (so each exchange is two context switches, not a race
between idle CPUs: the CPU time per exchange is otherwise bimodal). The client runs in
the cgroup .../unified/tulle/<pid>/client and the server in
.../server (standing for one pod on each of the lab's two nodes). Variants (stats.VARIANTS):
(a) nothing attached; (b) one or two copies of a tcp_probe raw-tracepoint program like the
shipped tracer's (1-in-16 random draw first; a sampled segment looks its socket up and
records srtt); (c) a sock_ops program on the client's cgroup (or both) that sets
BPF_SOCK_OPS_RTT_CB_FLAG when a socket becomes established and keeps min/sum/max/last in
sk_storage on each RTT callback; (d) like (c), clearing the flag after 64 samples; (e) like
(c), the summary in an LRU hash keyed by the socket address (the shipped layout until
2026-12-06); (f) like (e), a random 1 in 4 callbacks taken, drawn before the lookup; (z)
the flag set, each callback returning at once (the floor: dispatch and the stats). Each
round runs every variant once, in an order rotated per round; a first warm-up round is
discarded. Per exchange it prints the
client's and server's CPU time (user + system, the loop only), exchanges per second, and the
programs' runs and run_time_ns (kernel BPF stats, on while this runs). run_time_ns is the
program body only; dispatch shows only in the CPU time. Everything created (netns, cgroups,
programs) is removed at the end, also on failure. Loads BPF: run it under the lab lock.
"""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.sockops_ab_stats import (
    VARIANTS,
    RunFigures,
    Variant,
    figures,
    parse_child,
    pick,
    summarise,
    table,
)
from bench.tracecost_stats import ProgStats, parse_fdinfo

ADDR = "10.99.78.1"  # on the private namespace's lo only
CGROUP_V2 = Path("/sys/fs/cgroup/unified")
SAMPLE_LIMIT = 64
SAMPLE_MASK = 3  # (f): 1 in 4

CHILD = r"""
import os, resource, socket, struct, sys, time
n, addr, client_cg, server_cg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def recv_exact(s, k):
    got = b""
    while len(got) < k:
        part = s.recv(k - len(got))
        if not part:
            return b""
        got += part
    return got
os.sched_setaffinity(0, {int(sys.argv[5])})  # one CPU for both: every exchange two switches
port_r, port_w = os.pipe()
cpu_r, cpu_w = os.pipe()
pid = os.fork()
if pid == 0:  # the server pod: its cgroup before its listening socket (accepted ones inherit it)
    with open(server_cg, "w") as f:
        f.write(str(os.getpid()))
    srv = socket.socket()
    srv.bind((addr, 0))
    srv.listen(1)
    os.write(port_w, struct.pack("=H", srv.getsockname()[1]))
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start, reply = cpu(), b"y" * 64
    while recv_exact(c, 64):
        c.sendall(reply)
    os.write(cpu_w, struct.pack("=d", cpu() - start))
    os._exit(0)
with open(client_cg, "w") as f:
    f.write(str(os.getpid()))
port = struct.unpack("=H", os.read(port_r, 2))[0]
cli = socket.create_connection((addr, port))
cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * 64
t0, c0 = time.monotonic(), cpu()
for _ in range(n):
    cli.sendall(msg)
    if not recv_exact(cli, 64):
        sys.exit("server closed early")
wall, mine = time.monotonic() - t0, cpu() - c0
cli.close()
server_cpu = struct.unpack("=d", os.read(cpu_r, 8))[0]
os.waitpid(pid, 0)
print(n, mine + server_cpu, wall)
"""

PROGRAMS = r"""
#include <uapi/linux/bpf.h>
struct rtt { u32 n; u32 min; u32 max; u32 last; u64 sum; };

static __always_inline void rtt_add(struct rtt *r, u32 srtt)
{
	if (!r->n || srtt < r->min)
		r->min = srtt;
	if (srtt > r->max)
		r->max = srtt;
	r->last = srtt;
	r->sum += srtt;
	r->n++;
}

/* (b) like bpf/trace_sock.c's raw tcp_probe: the draw before any lookup; the bench's
 * sockets stand for traced ones, so a sampled segment's socket is added when missing */
BPF_TABLE("lru_hash", u64, struct rtt, probe_conns, 1024);
static __always_inline int probe(struct bpf_raw_tracepoint_args *ctx)
{
	u64 sk = ctx->args[0];
	u32 srtt8 = 0;
	struct rtt zero = {}, *r;

	if (bpf_get_prandom_u32() & 15)
		return 0;
	r = probe_conns.lookup_or_try_init(&sk, &zero);
	if (r && !bpf_probe_read_kernel(&srtt8, sizeof(srtt8), (const char *)sk + OFF_TCP_SRTT))
		rtt_add(r, srtt8 >> 3);
	return 0;
}
int probe1(struct bpf_raw_tracepoint_args *ctx) { return probe(ctx); }
int probe2(struct bpf_raw_tracepoint_args *ctx) { return probe(ctx); }

/* (c)/(d): RTT callbacks only for sockets flagged at established */
BPF_SK_STORAGE(rtt_store, struct rtt);
static __always_inline int sockops(struct bpf_sock_ops *skops, u32 limit)
{
	struct bpf_sock *sk;
	struct rtt *r;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
		sk = skops->sk;
		if (!sk)
			return 1;
		r = rtt_store.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!r)
			return 1;
		rtt_add(r, skops->srtt_us >> 3);
		if (limit && r->n >= limit)
			bpf_sock_ops_cb_flags_set(skops,
				skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	}
	return 1;
}
int sockops_keep(struct bpf_sock_ops *skops) { return sockops(skops, 0); }

/* (e): as (c), the summary in an LRU hash keyed by the socket's address (65,536 entries, as
 * bpf/lib/conn_trace.h's trace_conns_v1): a hash and bucket walk per callback; (f) the same
 * taking a random 1 in (SAMPLE_MASK + 1) callbacks, drawn before the lookup */
BPF_TABLE("lru_hash", u64, struct rtt, lru_conns, 65536);
static __always_inline int sockops_lru(struct bpf_sock_ops *skops, u32 mask)
{
	struct rtt zero = {}, *r;
	u64 sk;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
		if (mask == ~0U)
			return 1; /* (z): the callback's floor, nothing done */
		if (mask && (bpf_get_prandom_u32() & mask))
			return 1;
		sk = (u64)skops->sk;
		if (!sk)
			return 1;
		r = lru_conns.lookup_or_try_init(&sk, &zero);
		if (r)
			rtt_add(r, skops->srtt_us >> 3);
		return 1;
	}
	return 1;
}
int sockops_lru_all(struct bpf_sock_ops *skops) { return sockops_lru(skops, 0); }
int sockops_lru_sampled(struct bpf_sock_ops *skops) { return sockops_lru(skops, SAMPLE_MASK); }
int sockops_empty(struct bpf_sock_ops *skops) { return sockops_lru(skops, ~0U); }
int sockops_limit(struct bpf_sock_ops *skops) { return sockops(skops, SAMPLE_LIMIT); }
"""

_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[sockops_ab {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def _stats(fd: int) -> ProgStats:
    stats = parse_fdinfo(Path(f"/proc/self/fdinfo/{fd}").read_text())
    if stats is None:
        raise RuntimeError(f"fd {fd} is not a BPF program with run-time stats")
    return stats


class Bench:
    """The namespace, the two cgroups and the loaded programs; `close` removes them all."""

    def __init__(self) -> None:
        self.ns = f"tulle-sockab-{os.getpid()}"
        self.top = CGROUP_V2 / "tulle"
        self.root = self.top / str(os.getpid())
        self.made: list[Path] = []  # cgroups this bench created, parents first
        self.bpf: Any = None
        self.probe_links: list[int] = []
        self.sockops: list[tuple[Any, int]] = []  # (bcc function, cgroup fd) attached
        self.netns = False
        self.cpu = max(os.sched_getaffinity(0))

    def open(self) -> None:
        from bcc import BPF

        from agent.tracing.btf import field_offset

        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.netns = True
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", self.ns, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
        for d in (self.top, self.root, self.root / "client", self.root / "server"):
            if not d.exists():
                d.mkdir()
                self.made.append(d)
        off = field_offset("tcp_sock", "srtt_us")
        if off is None:
            raise RuntimeError("no tcp_sock.srtt_us offset in the kernel's BTF")
        self.bpf = BPF(text=PROGRAMS, cflags=[f"-DOFF_TCP_SRTT={off}",
                                               f"-DSAMPLE_LIMIT={SAMPLE_LIMIT}",
                                               f"-DSAMPLE_MASK={SAMPLE_MASK}"])
        self.funcs = {name: self.bpf.load_func(name.encode(), kind) for name, kind in (
            ("probe1", BPF.RAW_TRACEPOINT), ("probe2", BPF.RAW_TRACEPOINT),
            ("sockops_keep", BPF.SOCK_OPS), ("sockops_limit", BPF.SOCK_OPS),
            ("sockops_lru_all", BPF.SOCK_OPS), ("sockops_lru_sampled", BPF.SOCK_OPS),
            ("sockops_empty", BPF.SOCK_OPS))}

    def attach(self, v: Variant) -> list[int]:
        """Attach the variant's programs; their fds (for the stats)."""
        from bcc import BPF, BPFAttachType, lib

        fds = [self.funcs[f"probe{i + 1}"].fd for i in range(v.probe_copies)]
        for fd in fds:
            link = lib.bpf_attach_raw_tracepoint(fd, b"tcp_probe")
            if link < 0:
                raise RuntimeError(f"attaching tcp_probe failed ({link})")
            self.probe_links.append(link)
        if v.sockops:
            prog = self.funcs[
                "sockops_empty" if v.sockops_empty else
                ("sockops_lru_sampled" if v.sockops_sampled else "sockops_lru_all")
                if v.sockops_lru else "sockops_limit" if v.sockops_limit else "sockops_keep"]
            for pod in ("client", "server") if v.sockops_server else ("client",):
                cg = os.open(self.root / pod, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    BPF.attach_func(prog, cg, BPFAttachType.CGROUP_SOCK_OPS)
                except BaseException:
                    os.close(cg)
                    raise
                self.sockops.append((prog, cg))
            fds.append(prog.fd)
        return fds

    def detach(self) -> None:
        from bcc import BPF, BPFAttachType

        while self.probe_links:
            os.close(self.probe_links.pop())
        while self.sockops:
            prog, cg = self.sockops.pop()
            try:
                BPF.detach_func(prog, cg, BPFAttachType.CGROUP_SOCK_OPS)
            finally:
                os.close(cg)

    def run(self, v: Variant, exchanges: int) -> RunFigures:
        fds = self.attach(v)
        try:
            before = [_stats(fd) for fd in fds]
            out = subprocess.run(
                # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroups
                ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-c", CHILD,
                 str(exchanges), ADDR, str(self.root / "client" / "cgroup.procs"),
                 str(self.root / "server" / "cgroup.procs"), str(self.cpu)],
                capture_output=True, text=True, timeout=600)
            if out.returncode:
                raise RuntimeError(f"bench child failed ({out.returncode}): {out.stderr[-800:]}")
            after = [_stats(fd) for fd in fds]
        finally:
            self.detach()
        runs = sum(a.run_cnt - b.run_cnt for a, b in zip(after, before, strict=True))
        ns = sum(a.run_time_ns - b.run_time_ns for a, b in zip(after, before, strict=True))
        return figures(v.name, parse_child(out.stdout), runs, ns)

    def close(self) -> None:
        try:
            self.detach()
        finally:
            if self.bpf is not None:
                self.bpf.cleanup()
            for d in reversed(self.made):
                try:
                    _rmdir(d)
                except OSError as e:  # `tulle` itself may hold another lab's nodes by now
                    if d != self.top:
                        print(f"could not remove {d}: {e}", file=sys.stderr)
            if self.netns:
                subprocess.run(["ip", "netns", "del", self.ns], check=False)


def _rmdir(d: Path, tries: int = 50) -> None:
    """rmdir a cgroup; a child killed on failure may still be leaving it (EBUSY)."""
    for _ in range(tries - 1):
        try:
            d.rmdir()
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.1)
    d.rmdir()


def rotated(variants: list[Variant], round_no: int) -> list[Variant]:
    k = round_no % len(variants)
    return variants[k:] + variants[:k]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sockops_ab", description=__doc__.splitlines()[0])
    p.add_argument("--exchanges", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    p.add_argument("--no-stats", action="store_true",
                   help="leave BPF run stats off (their two clock reads per run count in the "
                        "CPU time; the program columns then read 0)")
    p.add_argument("--out", type=Path, help="append the table (markdown) and raw runs here")
    args = p.parse_args(argv)
    try:
        variants = pick(args.variants)
    except ValueError as e:
        p.error(str(e))
    if args.exchanges <= 0 or args.rounds <= 0:
        p.error("--exchanges and --rounds must be positive")
    if os.geteuid() != 0:
        p.error("needs root (netns, cgroups, BPF)")
    from bench.bpfprogs import bpf_stats

    bench = Bench()
    results: list[RunFigures] = []
    try:
        bench.open()
        with nullcontext() if args.no_stats else bpf_stats():
            for r in range(args.rounds + 1):  # round 0: warm-up, discarded
                for v in rotated(variants, r):
                    fig = bench.run(v, args.exchanges)
                    if r:
                        results.append(fig)
                    progress(f"round {r} {v.name:3} {fig.cpu_us:.2f} µs CPU/exchange, "
                             f"{fig.exchanges_per_s:,.0f}/s, {fig.prog_runs:.3f} runs "
                             f"{fig.prog_ns:.1f} ns/exchange")
    finally:
        bench.close()
    order = [v.name for v in variants]
    text = table(sorted(summarise(results), key=lambda s: order.index(s.variant)),
                 {v.name: v.label for v in VARIANTS})
    load = os.getloadavg()
    print(text)
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.out:
        with args.out.open("a") as f:
            f.write(f"\n`{' '.join(sys.argv[1:])}`\n\n{text}\n\nload average at the end "
                    f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n\n"
                    "<details><summary>runs</summary>\n\n")
            for fig in results:
                f.write(f"- {asdict(fig)}\n")
            f.write("\n</details>\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
