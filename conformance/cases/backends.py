'''Small pod programs for the backend-protocol cases: a WebSocket echo server and client
(RFC 6455, standard library only: pods run the system python) and an h2c-only server and
client (the ``h2`` package of the project's environment, as the gRPC cases use grpcio).
Each server listens on 8080 ("http"; argv: another port and address) and names its pod; each client
prints one JSON line (its last argument, when given, the port instead of 80).'''

from __future__ import annotations

from typing import Any

WS_SERVER = r"""
import base64, hashlib, socket, struct, sys, threading
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def frame(op, data):
    n = len(data)
    head = bytes([0x80 | op]) + (bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n))
    return head + data
def exact(f, n):
    b = f.read(n)
    if len(b) < n:
        raise EOFError
    return b
def read_frame(f):
    b0, b1 = exact(f, 2)
    n = b1 & 127
    if n == 126:
        n = struct.unpack("!H", exact(f, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(f, 8))[0]
    mask = exact(f, 4) if b1 & 128 else b""
    data = exact(f, n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return b0 & 15, data
def serve(conn):
    f = conn.makefile("rb")
    try:
        lines = []
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            lines.append(line.decode("latin-1"))
        heads = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if heads.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in heads:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(heads["sec-websocket-key"].encode() + GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            op, data = read_frame(f)
            if op == 8:
                conn.sendall(frame(8, data))
                return
            conn.sendall(frame(10 if op == 9 else op, data))
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()
port, bind = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (8080, "0.0.0.0")
srv = socket.create_server((bind, port))
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# argv: gateway address, Host. Opens ws://<address>/ws, sends a text and a binary message
# (masked, as a client must) and prints the handshake's status, whether Sec-WebSocket-Accept
# was right, and the two replies.
WS_CLIENT = r"""
import base64, hashlib, json, os, socket, struct, sys
address, host = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 80
def exact(f, n):
    b = f.read(n)
    if len(b) < n:
        raise EOFError("closed")
    return b
def send(s, op, data):
    mask = os.urandom(4)
    s.sendall(bytes([0x80 | op, 0x80 | len(data)]) + mask
              + bytes(c ^ mask[i % 4] for i, c in enumerate(data)))
def receive(f):
    b0, b1 = exact(f, 2)
    n = b1 & 127
    if n == 126:
        n = struct.unpack("!H", exact(f, 2))[0]
    return b0 & 15, exact(f, n)
out = {}
try:
    key = base64.b64encode(os.urandom(16))
    s = socket.create_connection((address, port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nOrigin: ws://gateway/ws\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
    f = s.makefile("rb")
    status = f.readline().split()
    out["status"] = int(status[1]) if len(status) > 1 else 0
    heads = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        heads[k.strip().lower()] = v.strip()
    want = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    out["accept"] = heads.get("sec-websocket-accept", "").encode() == want
    if out["status"] == 101:
        send(s, 1, b"Websocket Support!")
        op, data = receive(f)
        out["text"] = data.decode() if op == 1 else f"opcode {op}"
        send(s, 2, bytes([1, 2, 3, 4, 5, 6, 7]))
        op, data = receive(f)
        out["binary"] = list(data) if op == 2 else f"opcode {op}"
        send(s, 8, struct.pack("!H", 1000))
    s.close()
except Exception as e:
    out["error"] = repr(e)
print(json.dumps(out))
"""

# An HTTP/2 server with prior knowledge only: an HTTP/1.1 request is a protocol error (the
# connection closes), so an answer proves the waypoint spoke h2c to it.
H2C_SERVER = r"""
import json, os, socket, sys, threading
import h2.config, h2.connection, h2.events, h2.exceptions
pod = os.environ["POD_NAME"]
def serve(sock):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    heads = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for e in c.receive_data(data):
                if isinstance(e, h2.events.RequestReceived):
                    heads[e.stream_id] = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if isinstance(e, h2.events.StreamEnded):
                    h = heads.pop(e.stream_id, {})
                    body = json.dumps({"pod": pod, "proto": "HTTP/2.0", "path": h.get(":path"),
                                       "host": h.get(":authority")}).encode()
                    c.send_headers(e.stream_id, [(":status", "200"),
                                                 ("content-type", "application/json"),
                                                 ("content-length", str(len(body)))])
                    c.send_data(e.stream_id, body, end_stream=True)
            sock.sendall(c.data_to_send())
    except (h2.exceptions.ProtocolError, OSError):
        pass
    finally:
        sock.close()
port, bind = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (8080, "0.0.0.0")
srv = socket.create_server((bind, port))
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# argv: gateway address, authority, path. One GET with HTTP/2 prior knowledge.
H2C_CLIENT = r"""
import json, socket, sys
import h2.config, h2.connection, h2.events
address, authority, path = sys.argv[1:4]
port = int(sys.argv[4]) if len(sys.argv) > 4 else 80
out = {}
try:
    s = socket.create_connection((address, port), timeout=5)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", authority),
                       (":path", path)], end_stream=True)
    s.sendall(c.data_to_send())
    body, done = b"", False
    while not done:
        data = s.recv(65536)
        if not data:
            out["error"] = "connection closed"
            break
        for e in c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived):
                out["status"] = int(dict(e.headers)[":status"])
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    try:
        out["body"] = json.loads(body)
    except ValueError:
        out["body"] = body.decode("utf-8", "replace")
    s.close()
except Exception as e:
    out["error"] = repr(e)
print(json.dumps(out))
"""


def program(ns: str, name: str, python: str, script: str) -> dict[str, Any]:
    """A Deployment running ``script`` on port 8080 ("http")."""
    container = {"name": name, "image": "tulle/echo", "command": [python, "-c", script],
                 "ports": [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container]}}}}

# argv: certificate PEM, key PEM[, port, address]. HTTPS (HTTP/1.1) answering every GET with
# its pod, the path, the Host and the SNI name the client sent (what upstream's echo reports).
# With $CLIENT_CA_PEM set it requires a client certificate of that CA and also reports the
# certificates presented (tls.peerCertificates); a refused handshake is answered with nothing.
TLS_SERVER = r"""
import json, os, socket, ssl, sys, tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
folder = tempfile.mkdtemp()
for name, pem in (("c.pem", sys.argv[1]), ("k.pem", sys.argv[2])):
    with open(os.path.join(folder, name), "w") as f:
        f.write(pem)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem"))
if os.environ.get("CLIENT_CA_PEM"):
    ctx.load_verify_locations(cadata=os.environ["CLIENT_CA_PEM"])
    ctx.verify_mode = ssl.CERT_REQUIRED
names = {}
ctx.sni_callback = lambda sock, name, _ctx: names.__setitem__(sock, name)
port, bind = (int(sys.argv[3]), sys.argv[4]) if len(sys.argv) > 4 else (8080, "0.0.0.0")
pod = os.environ.get("POD_NAME", "")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        answer = {"pod": pod, "path": self.path, "host": self.headers.get("Host"),
                  "sni": names.get(self.connection)}
        if ctx.verify_mode == ssl.CERT_REQUIRED:
            der = self.connection.getpeercert(binary_form=True)
            answer["tls"] = {"peerCertificates": [ssl.DER_cert_to_PEM_cert(der)] if der else []}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        sock, address = self.socket.accept()  # the handshake happens in the handler's thread
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address
    def handle_error(self, request, client_address):
        pass  # a refused handshake (either side's validation failing) is not an error here
S((bind, port), H).serve_forever()
"""
