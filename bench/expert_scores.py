"""How good is the expert, how bad is constant velocity: mean PDMS per family on generated scenes.

Target: expert >= 0.95 overall and in every family; constant velocity should fail most long-tail scenes
and pass most common ones.

    .venv/bin/python -m bench.expert_scores [--count 1000] [--metric pdms]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from driving.baselines import constant_velocity_plan
from driving.dataset import scene_seed
from driving.generator import FAMILIES, generate_scene, sample_families
from driving.geometry import trajectory_local
from scorer import prepare, score

PASS = 0.8  # a plan "passes" a scene at the ELF correctness threshold s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--metric", choices=["pdms", "epdms"], default="pdms")
    parser.add_argument(
        "--uniform", action="store_true", help="equal share per family instead of the default mix"
    )
    args = parser.parse_args()
    mix = {name: 1.0 for name in FAMILIES} if args.uniform else None
    families = sample_families(args.count, args.seed, mix)
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    start = time.perf_counter()
    for i, fam in enumerate(families):
        scene = generate_scene(fam, scene_seed(args.seed, i), f"e{args.seed}-{i}")
        plans = np.stack(
            [trajectory_local(scene.sample.expert, scene.ego), constant_velocity_plan(scene.ego)]
        )
        totals = score(prepare(scene), plans, args.metric).total
        rows[fam].append((float(totals[0]), float(totals[1])))
    secs = time.perf_counter() - start
    print(
        f"{args.count} scenes ({'uniform' if args.uniform else 'default mix'}), metric {args.metric}, {secs:.1f} s"
    )
    print(f"{'family':<26}{'kind':<11}{'n':>5}{'expert':>9}{'min':>7}{'CV mean':>9}{'CV pass':>9}")
    allv = []
    for fam in FAMILIES:
        if fam not in rows:
            continue
        a = np.asarray(rows[fam])
        allv.append(a)
        kind = FAMILIES[fam].difficulty
        print(
            f"{fam:<26}{kind:<11}{len(a):>5}{a[:, 0].mean():>9.3f}{a[:, 0].min():>7.2f}"
            f"{a[:, 1].mean():>9.3f}{(a[:, 1] >= PASS).mean():>9.0%}"
        )
    a = np.concatenate(allv)
    print(
        f"{'ALL':<37}{len(a):>5}{a[:, 0].mean():>9.3f}{a[:, 0].min():>7.2f}{a[:, 1].mean():>9.3f}{(a[:, 1] >= PASS).mean():>9.0%}"
    )


if __name__ == "__main__":
    main()
