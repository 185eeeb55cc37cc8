"""The runner's only I/O: a lab driven through the `tulle` CLI (apply, get, delete, exec), as
a user drives it, and requests made from inside a lab pod (stdlib HTTP, grpcio for gRPC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from conformance.case import CaseFailed

T = TypeVar("T")
POD_PYTHON = "/usr/bin/python3"  # pods run the system python: stdlib only
GRPC_PYTHON = sys.executable  # the project's environment has grpcio (pyproject.toml)

# Sends each request once (no redirect following) and prints one JSON line per request:
# status, headers (lower-case name -> values) and the body, parsed when it is JSON.
HTTP_CLIENT = r"""
import http.client, json, sys, urllib.parse
out = []
for req in json.loads(sys.argv[1]):
    u = urllib.parse.urlsplit(req["url"])
    target = (u.path or "/") + ("?" + u.query if u.query else "")
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=req.get("timeout", 5))
        c.putrequest(req.get("method", "GET"), target, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", req.get("host") or u.netloc)
        for k, v in req.get("headers", {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        raw = r.read().decode("utf-8", "replace")
        headers = {}
        for k, v in r.getheaders():
            headers.setdefault(k.lower(), []).append(v)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        out.append({"status": r.status, "headers": headers, "body": body})
        c.close()
    except Exception as e:
        out.append({"error": repr(e)})
print(json.dumps(out))
"""

GRPC_CLIENT = r"""
import json, sys
import grpc
target, calls = sys.argv[1], json.loads(sys.argv[2])
out = []
with grpc.insecure_channel(target) as channel:
    for call in calls:
        try:
            reply, rpc = channel.unary_unary(call["method"]).with_call(
                b"x", timeout=5, metadata=[tuple(m) for m in call.get("metadata", [])])
            out.append({"code": "OK", "reply": reply.decode()})
        except grpc.RpcError as err:
            out.append({"code": err.code().name, "details": err.details()})
print(json.dumps(out))
"""


@dataclass
class Lab:
    """A running lab, by name and state directory (the `tulle` CLI's TULLE_LAB and
    TULLE_STATE_DIR)."""

    name: str
    state_dir: str | None = None
    progress: Callable[[str], None] = field(default=lambda _msg: None)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, TULLE_LAB=self.name)
        if self.state_dir:
            env["TULLE_STATE_DIR"] = self.state_dir
        return env

    def tulle(self, *args: str, input: str | None = None, check: bool = True,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "agent.cli.main", *args], env=self.env,
                              input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CaseFailed(f"tulle {' '.join(args[:4])} failed ({proc.returncode}): "
                             f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        if objects:
            self.tulle("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    def delete(self, objects: Sequence[dict[str, Any]]) -> None:
        if objects:
            self.tulle("delete", "-f", "-", input=yaml.safe_dump_all(objects), check=False)

    def get(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        out = self.tulle("get", kind, "-n", namespace, "-o", "json").stdout
        return list(json.loads(out)["items"])

    def get_cluster(self, kind: str) -> list[dict[str, Any]]:
        return list(json.loads(self.tulle("get", kind, "-o", "json").stdout)["items"])

    def serves(self, kind: str) -> bool:
        """Whether the lab's API serves ``kind`` (a route kind not yet added is skipped)."""
        return self.tulle("get", kind.lower() + "s", "-A", "-o", "json", check=False
                          ).returncode == 0

    def pod(self, namespace: str, app: str) -> str:
        for p in self.get("pods", namespace):
            if p["metadata"].get("labels", {}).get("app") == app:
                return str(p["metadata"]["name"])
        raise CaseFailed(f"no pod with app={app} in {namespace}")

    def run_py(self, namespace: str, pod: str, python: str, script: str, *args: str,
               timeout: float = 60) -> Any:
        proc = self.tulle("lab", "exec", "-n", namespace, pod, "--", python, "-c", script,
                          *args, timeout=timeout)
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise CaseFailed(f"no output from the client in {namespace}/{pod}: {proc.stderr}")
        return json.loads(lines[-1])

    def http(self, namespace: str, pod: str, requests: Sequence[dict[str, Any]]
             ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.run_py(namespace, pod, POD_PYTHON, HTTP_CLIENT,
                                                json.dumps(list(requests)))
        return out

    def grpc(self, namespace: str, pod: str, target: str, calls: Sequence[dict[str, Any]]
             ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.run_py(namespace, pod, GRPC_PYTHON, GRPC_CLIENT,
                                                target, json.dumps(list(calls)))
        return out


def eventually(check: Callable[[], T], timeout: float = 30, interval: float = 0.5) -> T:
    """Run ``check`` until it stops raising CaseFailed (routes are eventually consistent, as
    upstream's MakeRequestAndExpectEventuallyConsistentResponse allows), then return what it
    returned; past ``timeout`` the last failure stands."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except CaseFailed:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
