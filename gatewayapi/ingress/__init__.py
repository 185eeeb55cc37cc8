"""Ingress -> Gateway API conversion (``tulle convert``); the mapping is in README.md."""

from gatewayapi.ingress.convert import DEFAULT_GATEWAY_CLASS, Conversion, convert
from gatewayapi.ingress.report import Finding, Severity, is_exact
from gatewayapi.ingress.source import IngressError

__all__ = [
    "DEFAULT_GATEWAY_CLASS",
    "Conversion",
    "Finding",
    "IngressError",
    "Severity",
    "convert",
    "is_exact",
]
