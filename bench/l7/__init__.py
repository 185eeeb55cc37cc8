"""The L7 benchmark (issue 4): Tulle's waypoint against Envoy, one core each, the same
50-rule route table and nginx backend, wrk with 32 keep-alive connections.
``python -m bench.l7`` or ``make bench-l7``; see ``bench.l7.cli``."""
