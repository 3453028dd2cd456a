"""Our model-state figures next to DeepSpeed's own estimators, setting by setting.

    rows = compare_with_deepspeed(known_shape("meta-llama/Llama-2-70b-hf"), gpus_per_node=8, nodes=4)
    # [{"setting": "ZeRO-3", "deepspeed_gb": 39.7, "ours_gb": 39.7, "delta": 0.0}, ...]

DeepSpeed's ``estimate_zero2_model_states_mem_needs_all_cold`` and
``estimate_zero3_model_states_mem_needs_all_cold`` print a table (per CPU, per GPU, options) and
return nothing, so the table is read from what they print. DeepSpeed is imported only when this is
called (tests/alignment/test_capacity_deepspeed.py, benchmarks/plan_vs_deepspeed.py).
"""

from __future__ import annotations

import contextlib
import io
import re

from alignment.capacity.memory import GIB, Zero, model_states
from alignment.capacity.shapes import ModelShape, largest_layer_params, total_params

_ROW = re.compile(r"^\s*([\d.]+)GB \|\s*([\d.]+)GB \| (.*)$")


def _printed_rows(fn, *args) -> list[tuple[float, str]]:
    """(GPU GB, options) of each row a DeepSpeed estimator prints."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fn(*args)
    rows = [_ROW.match(line) for line in buffer.getvalue().splitlines()]
    return [(float(m.group(2)), m.group(3)) for m in rows if m]


def _offloaded(options: str, key: str) -> bool:
    m = re.search(rf"{key}=(\S+)", options)
    return bool(m) and m.group(1).rstrip(",") != "none"


def deepspeed_estimates(total: int, largest_layer: int, gpus_per_node: int, nodes: int) -> list[tuple[Zero, float]]:
    """(ZeRO setting, GPU GB per DeepSpeed) for ZeRO-2 with/without optimizer offload and ZeRO-3
    with no offload, optimizer offload, optimizer + parameter offload (zero_init=1 rows; the GPU
    figure does not depend on zero_init)."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    out = []
    for gb, options in _printed_rows(estimate_zero2_model_states_mem_needs_all_cold, total, gpus_per_node, nodes):
        out.append((Zero(2, offload_optimizer=_offloaded(options, "offload_optimizer")), gb))
    for gb, options in _printed_rows(estimate_zero3_model_states_mem_needs_all_cold, total, largest_layer,
                                     gpus_per_node, nodes):
        if "zero_init=1" in options:
            out.append((Zero(3, offload_optimizer=_offloaded(options, "offload_optimizer"),
                             offload_params=_offloaded(options, "offload_param")), gb))
    return out


def compare_with_deepspeed(shape: ModelShape, gpus_per_node: int, nodes: int) -> list[dict]:
    """One row per DeepSpeed setting: DeepSpeed's GPU GB, ours (full training, bf16 mixed
    precision, :func:`alignment.capacity.memory.model_states`) and the relative delta."""
    total, largest = total_params(shape, "lm"), largest_layer_params(shape, "lm")
    rows = []
    for zero, ds_gb in deepspeed_estimates(total, largest, gpus_per_node, nodes):
        ours = model_states(total, total, gpus_per_node * nodes, zero, "bf16", largest).total / GIB
        rows.append({"model": shape.name, "gpus_per_node": gpus_per_node, "nodes": nodes, "setting": zero.label(),
                     "deepspeed_gb": ds_gb, "ours_gb": round(ours, 2), "delta": (ours - ds_gb) / ds_gb})
    return rows
