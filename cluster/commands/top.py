"""`elf-vla top RUN_DIR`: a live terminal view of a training run (throughput, reward, all-fail groups,
reinjections, learner, faults), refreshed from its `log.jsonl` and, with `--metrics-url`, Prometheus."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAME = "top"
HELP = "Live terminal view of a training run: throughput, reward, all-fail groups, reinjections, faults."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `elf-vla train`")
    p.add_argument("--metrics-url", help="also show the elfvla_ series of this /metrics endpoint")
    p.add_argument("--interval", type=float, default=2.0, help="refresh period [s] (default 2)")
    p.add_argument("--once", action="store_true", help="print the view once and exit")


def run(args: argparse.Namespace) -> int:
    from cluster.loop import LOG
    from cluster.metrics import read_log
    from cluster.top import prometheus_block, read_total_steps, render, scrape

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"elf-vla top: {run_dir}: not a folder", file=sys.stderr)
        return 2
    total = read_total_steps(run_dir)
    try:
        while True:
            view = render(read_log(run_dir / LOG), total, f"elf-vla top  {run_dir}")
            if args.metrics_url:
                view += "\n\nprometheus\n" + prometheus_block(scrape(args.metrics_url), args.metrics_url)
            if args.once:
                print(view)
                return 0
            sys.stdout.write("\x1b[2J\x1b[H" + view + "\n\n(Ctrl-C to quit)\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
