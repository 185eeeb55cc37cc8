"""Small programs run inside lab pods (with the system python, stdlib only)."""

HTTP_SPREAD = r"""
import collections, http.client, json, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pods, fails = collections.Counter(), []
for _ in range(n):
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/", headers={"Connection": "close"})
        pods[json.loads(c.getresponse().read())["pod"]] += 1
        c.close()
    except Exception as e:
        fails.append(repr(e))
print(json.dumps({"pods": pods, "fails": fails[:5], "failed": len(fails)}))
"""

HTTP_STREAM = r"""
import http.client, json, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ok, fails, end = 0, [], time.monotonic() + seconds
while time.monotonic() < end:
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/", headers={"Connection": "close"})
        assert c.getresponse().status == 200
        ok += 1
        c.close()
    except Exception as e:
        fails.append(repr(e))
    time.sleep(0.05)
print(json.dumps({"ok": ok, "failed": len(fails), "fails": fails[:5]}))
"""

UDP_SERVER = r"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(os.environ["POD_NAME"].encode() + b":" + data, peer)
"""

UDP_ASK = r"""
import collections, json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pods, fails = collections.Counter(), 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"q%d" % i, (host, port))
        pods[s.recv(2048).split(b":")[0].decode()] += 1
    except OSError:
        fails += 1
    s.close()
print(json.dumps({"pods": pods, "failed": fails}))
"""

# A TCP server that streams for as long as the client reads: each connection first says
# which pod it reached, then sends a chunk every 50 ms.
STREAM_SERVER = r"""
import os, socket, threading, time
def serve(conn):
    try:
        conn.sendall(os.environ["POD_NAME"].encode() + b"\n")
        while True:
            conn.sendall(b"x" * 1024)
            time.sleep(0.05)
    except OSError:
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# Opens connections through the service until every expected backend has one, keeps them all
# reading for `seconds`, and reports per pod whether the stream survived without a reset.
STREAM_CLIENT = r"""
import json, socket, sys, threading, time
host, port, seconds, want = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
conns = {}
for _ in range(60):
    if len(conns) >= want:
        break
    s = socket.create_connection((host, port), timeout=5)
    pod = s.makefile("rb").readline().strip().decode()
    if pod in conns:
        s.close()
    else:
        conns[pod] = s
print(json.dumps({"ready": sorted(conns)}), flush=True)
result = {}
def read(pod, s):
    got, end = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                result[pod] = {"bytes": got, "error": "closed"}
                return
            got += len(chunk)
        result[pod] = {"bytes": got, "error": None}
    except OSError as e:
        result[pod] = {"bytes": got, "error": repr(e)}
threads = [threading.Thread(target=read, args=item) for item in conns.items()]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(result), flush=True)
"""

# L4 load until told "stop" on stdin (or `seconds` pass): new connections one after another
# (each reads the pod line STREAM_SERVER sends, then closes) and one long-lived stream read
# throughout. Reports when each new connection started and whether it got its line, and the
# stream's bytes and first error. Every failure is kept, with its time.
L4_LOAD = r"""
import json, socket, sys, threading, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stop = threading.Event()
stream = socket.create_connection((host, port), timeout=10)
first = stream.makefile("rb").readline().strip().decode()
state = {"bytes": 0, "error": None}
def read():
    try:
        while not stop.is_set():
            chunk = stream.recv(65536)
            if not chunk:
                state["error"] = "closed"
                return
            state["bytes"] += len(chunk)
    except OSError as e:
        state["error"] = repr(e)
def wait_stop():
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()
threading.Thread(target=read, daemon=True).start()
threading.Thread(target=wait_stop, daemon=True).start()
print(json.dumps({"ready": first}), flush=True)
ok, fails, end = [], [], time.monotonic() + seconds
while not stop.is_set() and time.monotonic() < end:
    started = time.time()
    try:
        with socket.create_connection((host, port), timeout=3) as c:
            c.settimeout(3)
            if not c.makefile("rb").readline().strip():
                raise OSError("no pod line")
        ok.append(round(started, 3))
    except OSError as e:
        fails.append([round(started, 3), repr(e)])
    time.sleep(0.02)
print(json.dumps({"ok": ok, "fails": fails, "stream": state, "stopped": stop.is_set()}),
      flush=True)
"""
