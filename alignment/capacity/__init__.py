"""Will a stage fit its GPUs, and how long will it take: the arithmetic behind ``medalign plan``.

Pure functions, no torch, no ray: ``shapes`` (parameter counts from a config.json or the table of
known sizes in ``sizes.yaml``), ``memory`` (model states under ZeRO 0-3 with and without CPU
offload, activations, logits, KV cache), ``throughput`` (FLOPs per token, time at a stated MFU;
GPU figures in ``gpus.yaml``). ``jobs/gpu_plan.py`` applies them to the stages of a job.
"""
