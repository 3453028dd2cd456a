"""Model states per GPU: `medalign plan`'s figures next to DeepSpeed's own estimators.

    .venv/bin/python benchmarks/plan_vs_deepspeed.py            # Llama-2 7B, 13B, 70B
    .venv/bin/python benchmarks/plan_vs_deepspeed.py --models Qwen/Qwen2-7B bigscience/bloomz-7b1

Prints a markdown table: for each model, GPU/node count and ZeRO setting, the GPU GB that
``estimate_zero2_model_states_mem_needs_all_cold`` / ``estimate_zero3_model_states_mem_needs_all_cold``
print, ours (alignment.capacity.memory.model_states, full training, bf16 mixed precision) and the
delta. Arithmetic only: nothing is trained, no GPU is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYOUTS = ((1, 1), (8, 1), (8, 2), (8, 4))   # (GPUs per node, nodes)


def main(argv: list[str] | None = None) -> int:
    from alignment.capacity.deepspeed_check import compare_with_deepspeed
    from alignment.capacity.shapes import known_shape

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf",
                                                   "meta-llama/Llama-2-70b-hf"])
    args = p.parse_args(argv)
    print("| model | nodes x GPUs per node | setting | DeepSpeed GB | plan GB | delta |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for name in args.models:
        shape = known_shape(name)
        if shape is None:
            p.error(f"{name}: not in alignment/capacity/sizes.yaml")
        for per_node, nodes in LAYOUTS:
            for row in compare_with_deepspeed(shape, per_node, nodes):
                worst = max(worst, abs(row["delta"]))
                print(f"| {name} | {nodes} x {per_node} | {row['setting']} | {row['deepspeed_gb']:.2f} | "
                      f"{row['ours_gb']:.2f} | {100 * row['delta']:+.2f}% |")
    print(f"\nlargest |delta|: {100 * worst:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
