"""``tulle-cni``: the executable a container runtime runs (CNI_* environment, JSON on stdin).

Errors go to stdout as the SPEC's error object with exit status 1; stderr carries a
one-line copy for the runtime's log.
"""

from __future__ import annotations

import os
import sys

from cni.plugin import run
from cni.spec import CURRENT_VERSION, SUPPORTED_VERSIONS

ABOUT = (
    f"tulle-cni: Tulle's chained CNI plugin (generic-veth), CNI spec {CURRENT_VERSION}; "
    f"supports {', '.join(SUPPORTED_VERSIONS)}. Run by a container runtime, after the "
    "cluster's CNI in a .conflist (see cni/README.md)."
)


def main() -> None:
    if "CNI_COMMAND" not in os.environ and sys.stdin.isatty():
        print(ABOUT, file=sys.stderr)
    out, status = run(os.environ, sys.stdin.buffer.read)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
    if status:
        print(f"tulle-cni: {out}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
