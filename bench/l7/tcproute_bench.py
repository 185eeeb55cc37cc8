"""``python -m bench.l7.tcproute_bench`` (``make bench-l7-tcproute``, root): new TCP
connections per second through a Gateway's TCP listener, Tulle serving the TCPRoute in the
kernel against Envoy's ``tcp_proxy`` in front of the same backend (issue 16).

One lab of its own (``tulle lab up``, two nodes, torn down at the end): nginx (one worker,
a fixed 200) on node2; on node1 a client pod, and an Envoy pod. Tulle: a Gateway with a TCP
listener on 9000 and a TCPRoute to the backend's Service; the client dials the Gateway's
address and the eBPF datapath on its veth sends the connection to the backend (no process
in between). Envoy: ``--concurrency 1`` pinned to the peer core, a listener on 9000 whose
``tcp_proxy`` goes to the backend pod (as a Gateway implementation's endpoints), stats on,
a TCP access log to /dev/null (Tulle's datapath sends a flow per connection). Both paths
cross from node1 to node2 once. The load: wrk in the client pod, pinned to the load core,
``Connection: close`` (each request its own connection: the rate is connections/s).

Before measuring, one request through each path must be answered by the backend, or the
run stops. Results: ``bench/results/l7-<date>-tcproute[-LABEL].md`` and ``.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.l4 import manifests
from bench.l4.labs import BenchError as LabError
from bench.l4.labs import BenchLab
from bench.l4.wrk import WrkOutputError, parse_wrk, wrk_argv
from bench.l7 import pair_bench, peers, runinfo
from bench.l7.pair_report import PairRatio, PairResult, drops, markdown, pair_ratio
from bench.l7.peers import BenchError, Proc
from bench.l7.results import Measurement

LAB = "tcprb"
LISTEN_PORT = 9000
CONNECTIONS = 32
NS = manifests.NAMESPACE
GW = "gateway.networking.k8s.io/v1"


def gateway_objects() -> list[dict[str, Any]]:
    """The Gateway (a TCP listener) and the TCPRoute to the backend's Service."""
    return [
        {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "edge", "namespace": NS},
         "spec": {"gatewayClassName": "tulle",
                  "listeners": [{"name": "tcp", "port": LISTEN_PORT, "protocol": "TCP"}]}},
        {"apiVersion": GW, "kind": "TCPRoute",
         "metadata": {"name": "backend", "namespace": NS},
         "spec": {"parentRefs": [{"name": "edge", "sectionName": "tcp"}],
                  "rules": [{"backendRefs": [{"name": "target",
                                              "port": manifests.SERVICE_PORT}]}]}},
    ]


def envoy_bootstrap(backend: tuple[str, int], admin_port: int) -> dict[str, Any]:
    """A listener on every address of the pod, port 9000, whose tcp_proxy sends each
    connection to ``backend``; admin on the pod's loopback."""
    def address(host: str, port: int) -> dict[str, Any]:
        return {"socket_address": {"address": host, "port_value": port}}

    proxy = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "bench",
        "cluster": "backend",
        "access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3."
                         "FileAccessLog",
                "path": "/dev/null",
                "log_format": {"json_format": {
                    "time": "%START_TIME%", "duration_ms": "%DURATION%",
                    "client": "%DOWNSTREAM_REMOTE_ADDRESS%", "upstream": "%UPSTREAM_HOST%",
                    "bytes_in": "%BYTES_RECEIVED%", "bytes_out": "%BYTES_SENT%",
                    "flags": "%RESPONSE_FLAGS%"}},
            },
        }],
    }
    return {
        "admin": {"address": address("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [{"name": "bench", "address": address("0.0.0.0", LISTEN_PORT),
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.tcp_proxy",
                               "typed_config": proxy}]}]}],
            "clusters": [{"name": "backend", "type": "STATIC", "connect_timeout": "5s",
                          "load_assignment": {"cluster_name": "backend", "endpoints": [{
                              "lb_endpoints": [{"endpoint": {
                                  "address": address(*backend)}}]}]}}],
        },
    }


class TcpRouteRun:
    unit = "connections/s"

    def __init__(self, opts: pair_bench.PairOptions, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.lab = BenchLab(LAB, datapath=True, progress=opts.log, namespace=NS)
        self.envoy: Proc | None = None
        self.problems: list[str] = []

    def log(self, text: str) -> None:
        self.opts.log(text)

    def deploy(self) -> tuple[str, str, str]:
        """The lab, nginx, the client, the Envoy pod, the Gateway: (backend IP, Envoy pod
        IP, the Gateway's address)."""
        self.lab.up()
        conf = self.workdir / "nginx.conf"
        conf.write_text(manifests.nginx_conf(self.workdir))
        envoy_pod = {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "envoy", "namespace": NS, "labels": {"app": "envoy"}},
                     "spec": {"nodeSelector": {manifests.HOSTNAME_LABEL: "node1"},
                              "containers": [{"name": "envoy", "image": "bench",
                                              "command": ["sleep", "infinity"]}]}}
        self.lab.apply([manifests.namespace()])
        self.lab.apply([manifests.backend_pod(conf), manifests.client_pod(), envoy_pod,
                        manifests.target_service(), *gateway_objects()])
        ips = self.lab.wait_pods_ready(["backend", "client", "envoy"], timeout=120)
        deadline = time.monotonic() + 60
        address = ""
        while not address and time.monotonic() < deadline:
            gateways = self.lab.get("gateways")
            found = (gateways[0].get("status") or {}).get("addresses") if gateways else None
            address = found[0]["value"] if found else ""
            time.sleep(0.5)
        if not address:
            raise BenchError("the Gateway got no address in 60 s (is the lab controller up?)")
        return ips["backend"], ips["envoy"], address

    def start_envoy(self, backend_ip: str) -> Proc:
        config = self.workdir / "envoy-tcp.json"
        config.write_text(json.dumps(envoy_bootstrap((backend_ip, manifests.BACKEND_PORT),
                                                     peers.free_port()), indent=1))
        argv = self.lab.exec_argv("envoy", *peers.pinned(self.opts.peer_core),
                                  peers.find_tool("envoy", venv=True), "-c", str(config),
                                  "--concurrency", "1", "--disable-hot-restart",
                                  "--log-level", "error")
        # `tulle lab exec` and `ip netns exec` exec into Envoy: the pid stays Envoy's.
        proc = Proc("envoy", argv, self.workdir / "envoy-tcp.log", env=self.lab.env)
        if not proc.boosted:
            self.problems.append("envoy: could not raise its scheduling priority")
        return proc

    def fetch(self, url: str, attempts: int = 40) -> str:
        """One request from the client pod; the answer, or why there was none."""
        last = ""
        for _ in range(attempts):
            done = self.lab.exec("client", "curl", "-sS", "-m", "3", url, check=False)
            if done.returncode == 0 and done.stdout.strip() == "ok":
                return "ok"
            last = (done.stdout + done.stderr).strip()[-200:]
            time.sleep(0.5)
        return last or "no answer"

    def measure(self, peer: str, url: str, round_: int) -> Measurement:
        opts = self.opts
        argv = [*peers.pinned(opts.load_core),
                *wrk_argv(url, threads=1, connections=CONNECTIONS, seconds=opts.duration,
                          close=True)]
        if opts.warmup:
            warm = wrk_argv(url, threads=1, connections=CONNECTIONS, seconds=opts.warmup,
                            close=True)
            self.lab.exec("client", *peers.pinned(opts.load_core), *warm,
                          timeout=opts.warmup + 60, check=False)
        pid = self.envoy.pid if peer == "envoy" and self.envoy else None
        cpu0 = peers.cpu_seconds(pid) if pid else (0.0, 0.0)
        cores0 = peers.core_times()
        t0 = time.monotonic()
        done = self.lab.exec("client", *argv, timeout=opts.duration + 60, check=False)
        wall = time.monotonic() - t0
        cores = peers.core_busy(cores0, peers.core_times())
        try:
            result = parse_wrk(done.stdout)
        except WrkOutputError as err:
            raise BenchError(f"wrk to {url} failed ({done.returncode}): {err}\n"
                             f"{done.stderr.strip()[-400:]}") from err
        peer_cpu = user_share = None
        if pid:
            user, system = peers.cpu_seconds(pid)
            used = (user - cpu0[0]) + (system - cpu0[1])
            peer_cpu = round(used / wall, 3)
            user_share = round((user - cpu0[0]) / used, 3) if used else None
        if result.errors:
            self.problems.append(f"{peer}-r{round_}: wrk saw {result.errors} errors "
                                 f"({result.socket_errors}, non-2xx {result.non_2xx})")
        self.log(f"    {peer}-r{round_}: {result.rps:,.0f} {self.unit}, p50 "
                 f"{result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, peer CPU {peer_cpu or '-'}")
        return Measurement(peer, self.unit, round_, result, peer_cpu, user_share, cores)

    def execute(self, title: str, command: str) -> PairResult:
        opts = self.opts
        began = time.monotonic()
        started = dt.datetime.now().astimezone()
        load_avg = os.getloadavg()
        backend_ip, envoy_ip, gateway = self.deploy()
        self.envoy = self.start_envoy(backend_ip)
        urls = {"tulle": f"http://{gateway}:{LISTEN_PORT}/",
                "envoy": f"http://{envoy_ip}:{LISTEN_PORT}/"}
        checks = []
        for peer, url in urls.items():
            answer = self.fetch(url)
            checks.append({"what": f"{peer}: a request to {url} from the client pod reaches "
                                   "the backend", "ok": answer == "ok", "detail": answer})
            self.log(f"    {checks[-1]['what']}: {answer}")
        if not all(c["ok"] for c in checks):
            raise BenchError("a path does not reach the backend: refusing to measure")
        measurements: list[Measurement] = []
        ratios: list[PairRatio] = []
        for round_ in range(1, opts.rounds + 1):
            order = ["tulle", "envoy"] if round_ % 2 else ["envoy", "tulle"]
            self.log(f"  round {round_}: {' then '.join(order)}")
            got = {p: self.measure(p, urls[p], round_) for p in order}
            measurements += [got[p] for p in order]
            ratios.append(pair_ratio(round_, got["tulle"], got["envoy"]))
        setup = {
            "paths": f"tulle: client pod (node1) -> Gateway {gateway}:{LISTEN_PORT} (TCPRoute, "
                     f"eBPF) -> nginx {backend_ip}:{manifests.BACKEND_PORT} (node2); envoy: "
                     f"client pod -> Envoy pod {envoy_ip}:{LISTEN_PORT} (node1, tcp_proxy) -> "
                     "the same nginx",
            "load": f"wrk -t1 -c{CONNECTIONS} -d{opts.duration}s -H 'Connection: close' "
                    f"(warm-up {opts.warmup} s first), in the client pod on core {opts.load_core}",
            "envoy": self.envoy.argv,
            "peer CPU": "Envoy's process; Tulle has no process on the path (its work is in "
                        "the kernel, in softirq on whichever core: see cores_busy in the JSON)",
            "rounds": opts.rounds,
            "versions": runinfo.versions(), "git": runinfo.git_info(),
        }
        return PairResult(
            title=title, unit=self.unit, date=started.strftime("%Y-%m-%d"),
            started=started.isoformat(timespec="seconds"), command=command, label=opts.label,
            setup=setup, machine=runinfo.machine_info(load_avg, measurements), checks=checks,
            measurements=measurements, ratios=ratios,
            problems=self.problems + drops(measurements),
            seconds=time.monotonic() - began)

    def teardown(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        if self.lab.created:
            self.lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    opts = pair_bench.parse_args("bench.l7.tcproute_bench", __doc__ or "", argv)
    args = sys.argv[1:] if argv is None else list(argv)
    command = ("python -m bench.l7.tcproute_bench " + shlex.join(args)).strip()
    if os.geteuid() != 0:
        print("tcproute: needs root (it brings up a lab)", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("tcproute: needs two cores", file=sys.stderr)
        return 2
    try:
        for tool in ("wrk", "nginx", "taskset", "curl"):
            peers.find_tool(tool)
        peers.find_tool("envoy", venv=True)
    except BenchError as exc:
        print(f"tcproute: {exc}", file=sys.stderr)
        return 2
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # tear the lab down, then exit
    workdir = Path(tempfile.mkdtemp(prefix="tulle-bench-tcproute-"))
    os.chmod(workdir, 0o755)  # nginx in the pod reads its config here
    run = TcpRouteRun(opts, workdir)
    try:
        result = run.execute("TCPRoute new connections: Tulle's kernel path vs Envoy tcp_proxy",
                             command)
    except (BenchError, LabError, OSError, ValueError) as exc:
        print(f"tcproute: failed: {exc}\n  logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tcproute: interrupted; logs in {workdir}", file=sys.stderr)
        return 130
    finally:
        run.teardown()  # Envoy by its pid, then the lab: whatever happened
    opts.out.mkdir(parents=True, exist_ok=True)
    base = runinfo.output_base(opts.out, result.date, "-".join(filter(None, ("tcproute",
                                                                          opts.label))))
    base.with_suffix(".json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(result, base.name))
    print(f"\ntarget met: {result.met} (Tulle/Envoy connections/s: mean {result.mean_ratio}, "
          f"rounds {[r.rate for r in result.ratios]})\nresults: {base.with_suffix('.md')}")
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
