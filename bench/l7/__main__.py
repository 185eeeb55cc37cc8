from bench.l7.cli import main

raise SystemExit(main())
