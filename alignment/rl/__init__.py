"""PPO with a KL penalty (HuatuoGPT's RLAIF step), written as small pieces.

The math, pure tensor functions tested against hand-computed values (tests/alignment/rl/):

    whiten.py       masked mean / variance / whitening, explained variance
    kl.py           per-token KL estimators k1, k2, k3
    rewards.py      r_t = -beta * kl_t, plus the (normalised, clipped) score at the last token
    gae.py          generalised advantage estimation over right-padded responses
    losses.py       clipped policy loss, clipped value loss, entropy, token log-probs
    controllers.py  fixed and adaptive (Ziegler et al.) KL coefficient

The loop around it:

    ppo_config.py   the stage config (HuatuoGPT's values as defaults)
    rollout.py      sampling with left padding + KV cache; log-probs; the critic (ValueModel)
    reward_fn.py    the RewardFn protocol: a reward model or a programmatic reward
    experience.py   one step's rollouts -> rewards -> advantages; the NaN guards
    ppo_update.py   epochs x mini-batches x accumulated micro-batches
    optim.py        AdamW (+ gradient sum across processes) or DeepSpeed ZeRO engines
    parallel.py     data-parallel sums and seeds derived per (step, rank)
    checkpoint.py   atomic, exactly resumable checkpoints
    metrics_log.py  metrics.jsonl + TensorBoard
    setup.py        loading policy, reference, critic, reward model
    ppo_loop.py     the training loop (the stage is alignment/stages/ppo.py)
"""
