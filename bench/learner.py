"""Learner step time per 1k response tokens and weight-export time: in-process, 1 Ray rank, 2 Ray ranks.

One ELF-GRPO update (clipped GRPO + policy shaping on a quarter of the rows + k3 KL to the reference)
on a batch of q_base prompts with their ground-truth answers as responses, on the tiny-internvl student.
Each rank uses one thread (`learner.num_cpus_per_rank=1`), so on this 2-core machine 2 ranks use both
cores; in-process and 1 rank use one. Prints the machine's load, which matters on shared cores.

    .venv/bin/python -m bench.learner [--steps 5] [--batch 16] [--zero 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_batch(student: Path, count: int):  # noqa: ANN201
    import torch

    from actors.encoding import encode_sft
    from actors.model_factory import generated_scenes, load_student
    from actors.prompts import build_base_prompt, front_image
    from actors.response import ground_truth_response
    from learner.batch import TrainBatch

    _, processor, _ = load_student(student)
    scenes = generated_scenes(count, seed=21)
    prompts = [build_base_prompt(s, front_image(s)) for s in scenes]
    base = TrainBatch.supervised(encode_sft(prompts, [ground_truth_response(s) for s in scenes], processor))
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(base.response_mask.shape, generator=g) * base.response_mask  # log π_old in (-1, 0]
    return dataclasses.replace(
        base,
        old_logprobs=old,
        advantages=torch.randn(count, generator=g),
        shaped=torch.arange(count) % 4 == 3,
        rewards=torch.rand(count, generator=g),
    )


def measure(student: Path, batch, ranks: int, zero: int, steps: int) -> dict[str, float]:  # noqa: ANN001
    from learner.config import LearnerConfig, LossConfig
    from learner.group import LearnerGroup

    config = LearnerConfig(
        zero_stage=zero, micro_batch_size=8, num_cpus_per_rank=1, loss=LossConfig(beta=0.01)
    )
    start = time.perf_counter()
    group = LearnerGroup(student, config, ranks=ranks)
    startup = time.perf_counter() - start
    try:
        group.update(batch)  # warm-up
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            group.update(batch)
            times.append(time.perf_counter() - t)
        exports = []
        for _ in range(3):
            t = time.perf_counter()
            group.export_weights()
            exports.append(time.perf_counter() - t)
    finally:
        group.shutdown()
    step = statistics.median(times)
    return {
        "startup_s": startup,
        "step_s": step,
        "s_per_1k_tokens": step / batch.tokens * 1000,
        "export_ms": 1000 * statistics.median(exports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--zero", type=int, default=2, choices=[0, 1, 2, 3])
    args = parser.parse_args()

    from actors.model_factory import generated_scenes, init_tiny
    from cluster.ray_runtime import start_ray, stop_ray

    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        student = Path(tmp) / "student"
        report = init_tiny("tiny-internvl", student, generated_scenes(60, seed=20), seed=0)
        batch = make_batch(student, args.batch)
        print(
            f"tiny-internvl {report.parameters / 1e6:.2f} M params; batch {batch.size} rows, "
            f"{batch.inputs.input_ids.shape[1]} columns, {batch.tokens} response tokens; ZeRO-{args.zero}"
        )
        start_ray(num_cpus=2)
        try:
            for label, ranks in (("in-process", 0), ("1 rank", 1), ("2 ranks", 2)):
                r = measure(student, batch, ranks, args.zero, args.steps)
                print(
                    f"{label:>11}: step {r['step_s']:.2f} s = {r['s_per_1k_tokens']:.3f} s per 1k response tokens; "
                    f"export {r['export_ms']:.0f} ms; start-up {r['startup_s']:.1f} s; load {os.getloadavg()[0]:.2f}"
                )
        finally:
            stop_ray()


if __name__ == "__main__":
    main()
