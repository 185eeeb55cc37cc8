"""``python -m bench.l7.grpc_bench`` (``make bench-l7-grpc``): gRPC unary calls per second
through Tulle's waypoint and through Envoy, side by side in one run (issue 16).

The layout of ``make bench-l7``: each proxy alone on the peer core (Envoy ``--concurrency
1``, the waypoint ``--workers 1``), the load generator, the backend and the flow drain on
the load core; Tulle with metrics and flows to a drain, Envoy with stats and a JSON access
log to /dev/null. Both do the same work: h2c (HTTP/2, prior knowledge) in, the same
50-rule GRPCRoute table (``grpc_table``: by service and method), h2c out to the same
backend. The load: h2load, ``-c8 -m4`` (32 calls in flight on 8 connections), unary calls
with a prebuilt 12-byte message. The backend: nginx, one process, h2c, answering every
routed method with a gRPC message and ``grpc-status: 0`` trailers, in C like the HTTP
benchmark's, so the backend is not what limits (a grpcio server, as tests/netns/test_grpc.py
runs, would put a Python process on the load core in both paths; not measured here).

Before measuring, a probe makes the same calls to both with grpcio: both answer the routed
methods OK from the backend and UNIMPLEMENTED for the others, with the same rule (Tulle's
flow ``tulle.rule``, Envoy's ``%ROUTE_NAME%``), or the run stops.
Results: ``bench/results/l7-<date>-grpc[-TAG].md`` and ``.json``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from bench.l7 import cli, grpc_table, pair_bench, peers
from bench.l7.grpc_table import GrpcTable
from bench.l7.h2load import h2load_argv, message, parse_h2load
from bench.l7.pair_bench import Loaded
from bench.l7.peers import HOST, Address, BenchError, Peer, Proc

REPLY = b"\x0a\x05hello"
"""The backend's answer and the request: a 7-byte protobuf message (field 1, "hello")."""
CONNECTIONS, STREAMS = 8, 4

NGINX_GRPC = """\
# The gRPC benchmark backend: one process, h2c with prior knowledge, no access log. A POST
# to a routed method is answered from a file (static files refuse POST with 405, which is
# turned into the file's 200), with gRPC's trailers; other paths are 404.
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx-grpc.pid;
error_log {dir}/nginx-grpc-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body;
    server {{
        listen {host}:{port} http2 backlog=4096;
        root {dir}/grpc-root;
        location / {{
            error_page 405 =200 /reply.bin;
        }}
        location = /reply.bin {{
            internal;
            default_type application/grpc;
            add_trailer grpc-status 0 always;
        }}
    }}
}}
"""


def call(address: Address, path: str) -> tuple[str, bytes | str]:
    """One unary call with grpcio: ("OK", reply) or (status code name, details)."""
    with grpc.insecure_channel(f"{address[0]}:{address[1]}") as channel:
        try:
            reply = channel.unary_unary(path)(REPLY, timeout=5)
        except grpc.RpcError as err:
            return err.code().name, err.details() or ""
    return "OK", reply


def wait_grpc(address: Address, path: str, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: tuple[str, bytes | str] = ("", "")
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        last = call(address, path)
        if last == ("OK", REPLY):
            return
        time.sleep(0.2)
    raise BenchError(f"{proc.name} does not answer {path} OK after {timeout}s ({last}):\n"
                     f"{proc.tail()}")


class GrpcRun(pair_bench.PairRun):
    unit = "calls/s"

    def __init__(self, opts: pair_bench.PairOptions, workdir: Path) -> None:
        super().__init__(opts, workdir)
        self.table: GrpcTable = grpc_table.build()
        self.backend = (HOST, peers.free_port())
        self.body = workdir / "request.bin"
        self.body.write_bytes(message(REPLY))

    def start_backend(self) -> Proc:
        root = self.workdir / "grpc-root"
        for path in self.table.backend_paths():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        (root / "reply.bin").write_bytes(message(REPLY))
        conf = self.workdir / "nginx-grpc.conf"
        conf.write_text(NGINX_GRPC.format(dir=self.workdir, host=HOST, port=self.backend[1]))
        proc = self.started(Proc("nginx", [*peers.pinned(self.opts.load_core),
                                           peers.find_tool("nginx"), "-p", str(self.workdir),
                                           "-c", str(conf)], self.workdir / "nginx-grpc.log"))
        wait_grpc(self.backend, self.table.path, proc)
        return proc

    def tulle(self, flows: str, tag: str) -> Peer:
        port, metrics = peers.free_port(), peers.free_port()
        config = self.workdir / f"tulle-grpc-{tag}.yaml"
        config.write_text(grpc_table.tulle_config(self.table, listen=f"{HOST}:{port}",
                                                  backend=f"{self.backend[0]}:{self.backend[1]}"))
        argv = [*peers.pinned(self.opts.peer_core), sys.executable, "-m", "l7proxy", "--config",
                str(config), "--listen", f"{HOST}:{port}", "--workers", "1", "--metrics",
                f"{HOST}:{metrics}", "--flows", flows]
        proc = self.started(Proc("tulle", argv, self.workdir / f"tulle-grpc-{tag}.log",
                                 env=pair_bench.env()))
        wait_grpc((HOST, port), self.table.path, proc)
        return Peer("tulle", proc, (HOST, port), ((HOST, metrics), "/metrics"))

    def envoy(self, access_log: str, tag: str) -> Peer:
        port, admin = peers.free_port(), peers.free_port()
        bootstrap = grpc_table.envoy_config(self.table, listen=(HOST, port),
                                            backend=self.backend, admin=(HOST, admin),
                                            access_log=access_log)
        config = self.workdir / f"envoy-grpc-{tag}.json"
        config.write_text(json.dumps(bootstrap, indent=1))
        argv = [*peers.pinned(self.opts.peer_core), peers.find_tool("envoy", venv=True), "-c",
                str(config), "--concurrency", "1", "--disable-hot-restart", "--log-level", "error"]
        proc = self.started(Proc("envoy", argv, self.workdir / f"envoy-grpc-{tag}.log"))
        wait_grpc((HOST, port), self.table.path, proc)
        return Peer("envoy", proc, (HOST, port), ((HOST, admin), "/stats"))

    def load(self, peer: Peer, name: str) -> Loaded:
        opts = self.opts
        log = self.workdir / f"h2load-{name}.log"
        url = f"http://{peer.address[0]}:{peer.address[1]}{self.table.path}"
        argv = h2load_argv(url, body=self.body, log=log, seconds=opts.duration,
                           warmup=opts.warmup, connections=CONNECTIONS, streams=STREAMS,
                           cpu=opts.load_core)
        return Loaded(argv, log, lambda report: parse_h2load(report, log.read_text()))

    def probe(self) -> list[dict[str, Any]]:
        """The probe calls to both peers, and the rule each picked."""
        probes = self.table.probes()
        got: dict[str, list[tuple[str, str | None]]] = {}
        for name in ("tulle", "envoy"):
            log = self.workdir / "envoy-grpc-access.log"
            peer = self.tulle("stdout", "probe") if name == "tulle" else self.envoy(str(log),
                                                                                  "probe")
            codes = [call(peer.address, p.path)[0] for p in probes]
            time.sleep(0.6 if name == "tulle" else 1.2)  # flow batches; Envoy's log flush
            self.stop(peer.proc)
            if name == "tulle":
                flows = [json.loads(line)["flow"] for line in
                         peer.proc.log.read_text().splitlines() if line.startswith("{")]
                rules = [(f.get("tulle") or {}).get("rule") or None for f in flows]
            else:
                entries = [json.loads(line) for line in log.read_text().splitlines() if line]
                rules = [e.get("route") if e.get("route") not in ("-", "") else None
                         for e in entries]
            rules = rules[-len(probes):] + [None] * (len(probes) - len(rules))
            got[name] = list(zip(codes, rules, strict=True))
        checks = []
        for i, p in enumerate(probes):
            want = ("OK" if p.rule else "UNIMPLEMENTED", p.rule)
            ok = got["tulle"][i] == want and got["envoy"][i] == want
            checks.append({"what": f"{p.path} -> {want[0]} by {p.rule or 'no rule'}", "ok": ok,
                           "detail": f"tulle {got['tulle'][i]}, envoy {got['envoy'][i]}"})
            self.log(f"    {checks[-1]['what']}: {checks[-1]['detail']}"
                     f"{'' if ok else '  MISMATCH'}")
        return checks

    def setup_info(self, tulle: Peer, envoy: Peer) -> dict[str, Any]:
        return {
            "route table": f"{len(self.table.rules)} GRPCRoute rules over "
                           f"{len(self.table.rules) // 2} GRPCRoutes (exact method, then service); "
                           f"the measured call {self.table.path} hits {self.table.target.name}",
            "load": f"h2load -t1 -c{CONNECTIONS} -m{STREAMS} -D{self.opts.duration} "
                    f"--warm-up-time={self.opts.warmup}, unary {len(message(REPLY))}-byte "
                    "request, content-type application/grpc, te: trailers (on the load core)",
            "backend": "nginx (1 process, h2c, on the load core): the gRPC reply from a file "
                       "with grpc-status 0 trailers",
            "tulle": tulle.proc.argv,
            "envoy": envoy.proc.argv,
            "variants": f"tulle: {cli.TULLE_VARIANT}; envoy: {cli.ENVOY_VARIANT}",
        }


def main(argv: Sequence[str] | None = None) -> int:
    opts = pair_bench.parse_args("bench.l7.grpc_bench", __doc__ or "", argv)
    args = sys.argv[1:] if argv is None else list(argv)
    command = "python -m bench.l7.grpc_bench " + shlex.join(args)
    return pair_bench.main(opts, GrpcRun, "gRPC unary calls: Tulle's waypoint vs Envoy",
                           command.strip(), "grpc", ("h2load", "nginx", "taskset"))


if __name__ == "__main__":
    raise SystemExit(main())
