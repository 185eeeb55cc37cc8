"""Tulle's own Gateway API conformance runner (issue 16 item 8): cases written from the spec
and the upstream suite's documented behaviour, run against a lab (`make conformance`), and a
report in the upstream ConformanceReport shape (v1.6.1). See conformance/README.md."""
