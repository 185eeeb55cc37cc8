"""Tulle node agent, control plane pieces and the `tulle` CLI."""
