"""Sans-IO HTTP/1.1 for the waypoint: a strict request parser (hardening before anything is
forwarded), an upstream response parser, and wire serialization. No sockets here."""

from l7proxy.http.parser import (
    END,
    BodyKind,
    ParseError,
    RequestHead,
    RequestParser,
    UpgradeData,
)
from l7proxy.http.response import ResponseHead, ResponseParser

__all__ = [
    "END",
    "BodyKind",
    "ParseError",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "UpgradeData",
]
