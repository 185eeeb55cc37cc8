import sys

from bench.trace.cli import main

sys.exit(main())
