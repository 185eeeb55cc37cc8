"""`make bench-observe` (issue 5): flow-event ingestion on one core, and what flow events
cost the L4 datapath. Run with ``python -m bench.observe``; see `cli` for the options."""
