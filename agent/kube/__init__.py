"""Kubernetes API access for Tulle's processes: one client library (lightkube, chosen by
bench/control/clients.py), a typed cache per watched kind, informers that feed it."""
