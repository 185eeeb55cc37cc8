import sys

from bench.observe.cli import main

sys.exit(main())
