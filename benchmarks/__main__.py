"""`python -m benchmarks [--smoke] [--only lookups|organisation|securityhub] [--output FILE]`: run the harness, print
the table, exit 1 if a check failed. `python -m benchmarks --baseline REV` compares this checkout with revision REV
instead."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import baseline, lookups, organisation, securityhub
from benchmarks.harness import Report, Settings, machine, run

RESULTS = Path(__file__).resolve().parent / "results.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a small, fast configuration (CI): checks, no targets")
    parser.add_argument(
        "--output", type=Path, help=f"also write the table here (default for a full run: {RESULTS.name})"
    )
    parser.add_argument(
        "--only",
        choices=["lookups", "organisation", "securityhub"],
        help="only the look-up, organisation or Security Hub case (not written to the results unless --output)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="only compare this checkout with git revision REV, side by side (cycle, scrape p99, memory)",
    )
    args = parser.parse_args(argv)
    settings = Settings.smoke() if args.smoke else Settings.full()
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr)

    if args.baseline:
        return _compare(args, progress, started)

    report = Report(settings) if args.only else run(settings, progress)
    if args.only in (None, "organisation"):
        scale = organisation.OrganisationSettings
        organisation.run(report, scale.smoke() if args.smoke else scale.full(), progress)
    if args.only in (None, "lookups"):
        lookups.run(report, lookups.LookupSettings.smoke() if args.smoke else lookups.LookupSettings.full(), progress)
    if args.only == "securityhub":
        hub = securityhub.HubSettings.smoke() if args.smoke else securityhub.HubSettings.full()
        securityhub.run(report, hub, progress)
    command = (
        "python -m benchmarks" + (" --smoke" if args.smoke else "") + (f" --only {args.only}" if args.only else "")
    )
    text = f"{report.table()}\n\nMachine: {machine()}. Run: `{command}`, {time.monotonic() - started:.0f} s.\n"
    print(text)
    output = args.output or (None if args.smoke or args.only else RESULTS)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    for failure in report.failures:
        print(f"CHECK FAILED: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def _compare(args: argparse.Namespace, progress: Callable[[str], None], started: float) -> int:
    compared = baseline.BaselineSettings.smoke() if args.smoke else baseline.BaselineSettings.full()
    table, missed = baseline.compare(args.baseline, compared, progress)
    command = f"python -m benchmarks{' --smoke' if args.smoke else ''} --baseline {args.baseline}"
    text = f"{table}\n\nMachine: {machine()}. Run: `{command}`, {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    for miss in missed:
        print(f"BOUND MISSED: {miss}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
