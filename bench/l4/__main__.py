"""Entry point: `python -m bench.l4 [--quick] ...` (see `bench.l4.cli`)."""

from bench.l4.cli import main

raise SystemExit(main())
