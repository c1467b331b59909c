"""``crucible plan``: how many seeds a sweep needs, from a pilot run or an assumed effect."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from crucible_dagster.cli.errors import flag_value
from crucible_dagster.cli.terminal import error_line
from crucible_dagster.cli.validate import load_or_report


def cmd_plan(args: argparse.Namespace) -> int:
    from crucible_dagster.sweeps.planning import latest_pilot, plan_seeds

    experiment = load_or_report(args.path)
    if experiment is None:
        return 1
    if args.cost:
        from crucible_dagster.cli.cost import print_cost

        return print_cost(experiment, args.path, args.json, sys.stdout)
    pilot = (
        Path(args.pilot)
        if args.pilot
        else (latest_pilot(experiment.id) if args.effect_size is None else None)
    )
    try:
        plan = plan_seeds(
            difference=args.difference,
            effect_size=args.effect_size,
            pilot=pilot,
            power=args.power,
            alpha=args.alpha,
        )
    except (ValueError, OSError) as exc:
        error_line(f"{args.path}: cannot be planned: {exc}")
        return 1
    print("\n".join(plan.lines(args.power, args.alpha)))
    return 0


def _number(text: str) -> float:
    value = flag_value(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1 (exclusive), got {value:g}"
        )
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan", help="how many seeds a sweep needs to detect a difference at a given power"
    )
    p.add_argument("path")
    p.add_argument(
        "--difference",
        type=_number,
        help="the smallest difference in the sweep metric worth detecting (uses a pilot run)",
    )
    p.add_argument(
        "--effect-size",
        type=_positive,
        help="an assumed standardized effect instead of a pilot run",
    )
    p.add_argument(
        "--pilot", help="a pilot sweep run directory (default: the latest run of this experiment)"
    )
    p.add_argument("--power", type=_probability, default=0.8)
    p.add_argument("--alpha", type=_probability, default=0.05)
    p.add_argument(
        "--cost",
        action="store_true",
        help="instead: the requests, tokens and cost of each variant, estimated; nothing is sent",
    )
    p.add_argument("--json", action="store_true", help="with --cost: the plan as JSON")
    p.set_defaults(func=cmd_plan)
