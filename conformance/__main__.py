"""`python -m conformance` (`make conformance`): run the cases against a lab, write the
ConformanceReport, and fail when a feature Tulle claims (gatewayapi/supported_features.py,
what its GatewayClass publishes) did not pass. `--write` makes the passing set the claim."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from conformance import claims
from conformance.case import Case, CaseResult
from conformance.cases import all_cases
from conformance.lab import Lab
from conformance.report import build_report, failed_claims, passing_features
from conformance.runner import run

REPO = Path(__file__).resolve().parents[1]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    p.add_argument("--lab", default=None,
                   help="run against this running lab (default: bring up a fresh one, "
                        "and take it down after)")
    p.add_argument("--report", type=Path, default=None,
                   help="where to write the report (default: "
                        "conformance/reports/tulle-<date>.yaml)")
    p.add_argument("--write", action="store_true",
                   help="make the features that passed Tulle's claim "
                        "(gatewayapi/supported_features.py)")
    p.add_argument("-k", dest="select", default=None,
                   help="only the cases whose name contains this (no claim check)")
    p.add_argument("--keep", action="store_true", help="leave the applied objects in the lab")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    cases = all_cases()
    if args.select:
        cases = [c for c in cases if args.select.lower() in c.name.lower()]
        if not cases:
            print(f"no case matches {args.select!r}", file=sys.stderr)
            return 2
    started = time.monotonic()
    if args.lab:
        results = run(Lab(args.lab, os.environ.get("TULLE_STATE_DIR")), cases, keep=args.keep)
    else:
        results = _with_fresh_lab(cases)
    now = datetime.now(UTC)
    claim = claims.load()
    passing = passing_features(results)
    if args.write and not args.select:
        claims.write(passing)
        claim = passing
        print(f"wrote {len(passing)} features to {claims.PATH.relative_to(REPO)}")
    report = build_report(results, claim, now.isoformat(timespec="seconds"))
    path = args.report or REPO / "conformance" / "reports" / f"tulle-{now:%Y-%m-%d}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(report, sort_keys=False))
    took = time.monotonic() - started
    print(f"report: {path} ({sum(r.outcome == 'passed' for r in results)} passed, "
          f"{sum(r.outcome == 'failed' for r in results)} failed, "
          f"{sum(r.outcome == 'skipped' for r in results)} skipped in {took:.0f}s)")
    if args.select:
        return 1 if any(r.outcome == "failed" for r in results) else 0
    if unclaimed := sorted(passing - claim):
        print(f"passing but not claimed (run with --write to claim): {', '.join(unclaimed)}")
    broken = failed_claims(results, claim)
    for feature, why in sorted(broken.items()):
        print(f"CLAIMED FEATURE FAILED: {feature}: {'; '.join(why)}", file=sys.stderr)
    return 1 if broken else 0


def _with_fresh_lab(cases: list[Case]) -> list[CaseResult]:
    """A two-node lab of its own (name conf<pid>, state in a temporary directory), always
    taken down."""
    name = f"conf{os.getpid() % 100000}"
    with tempfile.TemporaryDirectory(prefix="tulle-conformance-") as state:
        lab = Lab(name, state, progress=print)
        print(f"bringing up lab {name}")
        # The lab the claims were measured on (and the root tier's session lab): spawned
        # agents, kubelet-built veths; not yet checked on the CLI's default install.
        lab.tulle("lab", "up", "--name", name, "--install", "spawn", "--cni", "builtin",
                  timeout=600)
        try:
            return run(lab, cases, keep=True)  # the lab goes with them
        finally:
            print(f"taking down lab {name}")
            lab.tulle("lab", "down", "--name", name, check=False, timeout=300)


if __name__ == "__main__":
    sys.exit(main())
