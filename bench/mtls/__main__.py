from bench.mtls.cli import main

raise SystemExit(main())
