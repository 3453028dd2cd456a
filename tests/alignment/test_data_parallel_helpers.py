"""The small pieces data-parallel stages rest on, checked on one process by hand:
checkpoint notices (what a Ray Train group reports), sharding a list over ranks, PPO's
generation seeds and the stacking of rollouts from several generate calls, and which trl
checkpoint a killed stage resumes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alignment import distributed
from alignment.rl.parallel import DistInfo, derived_seed
from alignment.rl.ppo_loop import generation_seeds
from alignment.rl.rollout import RolloutBatch, concat_rollouts


def test_checkpoint_listeners_hear_every_ppo_checkpoint_and_can_be_removed(tmp_path):
    from alignment.rl.checkpoint import save_checkpoint

    class Updater:
        def save(self, directory: Path) -> None:
            (directory / "weights.pt").write_text("w")

    heard = []
    remove = distributed.on_checkpoint(lambda step, path: heard.append((step, path.name, (path / "state.json").is_file())))
    try:
        for step in (1, 2):
            save_checkpoint(tmp_path, step, {"metrics": []}, [Updater()], DistInfo(), keep=2)
    finally:
        remove()
    save_checkpoint(tmp_path, 3, {"metrics": []}, [Updater()], DistInfo(), keep=2)
    # complete (state.json written) when heard; nothing heard once removed
    assert heard == [(1, "step-00000001", True), (2, "step-00000002", True)]


def test_trainer_checkpoint_notice_names_the_saved_folder(tmp_path):
    from types import SimpleNamespace

    heard = []
    remove = distributed.on_checkpoint(lambda step, path: heard.append((step, path)))
    try:
        distributed.checkpoint_notice().on_save(SimpleNamespace(output_dir=str(tmp_path)),
                                                SimpleNamespace(global_step=8), None)
    finally:
        remove()
    assert heard == [(8, tmp_path / "checkpoint-8")]


def test_one_process_gets_the_whole_list_back():
    items = list(range(7))
    assert distributed.my_shard(items) == items
    assert distributed.gather_shards(items) == items
    assert distributed.broadcast_from_main({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("world", [2, 3])
def test_shards_cover_the_list_in_order(monkeypatch, world):
    items = list(range(10))
    shards = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        shards.append(distributed.my_shard(items))
    assert [x for s in shards for x in s] == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_generation_seeds_follow_the_position_in_the_step_batch():
    one = generation_seeds(7, step=3, first=0, n=8, chunk=4)
    two = [generation_seeds(7, step=3, first=r * 4, n=4, chunk=4) for r in (0, 1)]
    assert one == two[0] + two[1] == [derived_seed(7, "generate", 3, 0), derived_seed(7, "generate", 3, 4)]
    # a step whose batch fits one call keeps the seed one process always used
    assert generation_seeds(7, step=3, first=0, n=8, chunk=16) == [derived_seed(7, "generate", 3, 0)]


def test_concat_rollouts_pads_prompts_left_and_responses_right():
    pad = 0
    a = RolloutBatch(sequences=torch.tensor([[5, 6, 7, 8]]), attention_mask=torch.tensor([[1, 1, 1, 1]]),
                     response_mask=torch.tensor([[1.0, 1.0]]), prompt_len=2, ended=torch.tensor([True]))
    b = RolloutBatch(sequences=torch.tensor([[9, 10, 11, 12, 13, 14]]),
                     attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0]]),
                     response_mask=torch.tensor([[1.0, 1.0, 0.0]]), prompt_len=3, ended=torch.tensor([False]))
    c = concat_rollouts([a, b], pad)
    assert c.prompt_len == 3
    assert c.sequences.tolist() == [[0, 5, 6, 7, 8, 0], [9, 10, 11, 12, 13, 14]]
    assert c.attention_mask.tolist() == [[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0]]
    assert c.response_mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    assert c.responses.tolist() == [[7, 8, 0], [12, 13, 14]] and c.ended.tolist() == [True, False]
    assert concat_rollouts([a], pad) is a


def test_a_killed_sft_resumes_from_its_newest_complete_checkpoint(tmp_path):
    from alignment.stages.sft import _last_checkpoint

    assert _last_checkpoint(tmp_path / "none") is None
    for step, complete in ((4, True), (12, True), (16, False)):      # 16: the kill cut it short
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-x").mkdir()
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-12")
