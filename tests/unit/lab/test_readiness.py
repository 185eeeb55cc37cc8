import os
import socket

from lab.readiness import listening_ports, ports_ready


def test_a_listening_tcp_socket_makes_its_port_ready():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        assert not ports_ready(os.getpid(), [(port, "TCP")])
        srv.listen()
        assert port in listening_ports(os.getpid(), "tcp")
        assert ports_ready(os.getpid(), [(port, "TCP")])


def test_a_bound_udp_socket_counts_and_missing_ports_do_not():
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        assert ports_ready(os.getpid(), [(port, "UDP")])
        assert not ports_ready(os.getpid(), [(port, "UDP"), (1, "TCP")])


def test_unknown_pid_is_never_ready():
    assert listening_ports(2**22 + 12345, "tcp") == set()
