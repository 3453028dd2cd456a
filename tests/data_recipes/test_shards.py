"""Byte-range shards of a source file read the same records as the whole file, and a build that
reads its sources in shards (what ``--ray`` does) writes the same rows as one that does not."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from data_recipes.build import build
from data_recipes.process import batched_items, process_batch
from data_recipes.readers import read_source
from data_recipes.readers.shards import Shard, plan_shards, read_shard
from data_recipes.recipe_load import load_recipe
from data_recipes.records import Quarantined

FIXTURES = [("meddialog_raw_zh.txt", "meddialog_raw"), ("meddialog_raw_en.txt", "meddialog_raw"),
            ("huatuo_sft.jsonl", "huatuo_sft"), ("cmd_reward.jsonl", "cmd_reward"), ("ranked.jsonl", "ranked_jsonl"),
            ("cmd_pretrain.jsonl", "cmd_pretrain"), ("sharegpt.jsonl", "sharegpt"),
            ("openai_messages.jsonl", "openai_messages")]


def as_tuple(item):
    if isinstance(item, Quarantined):
        return ("quarantined", item.source_line, item.reason, item.raw)
    return (item.id, item.kind, [(t.role, t.content) for t in item.turns], item.text, item.responses,
            item.meta, item.source_line, item.language)


def assert_shards_read_like_whole(path, fmt: str, sizes) -> int:
    whole = [as_tuple(i) for i in read_source(path, fmt)]
    most = 1
    for size in sizes:
        shards = plan_shards(path, fmt, size)
        assert shards[0].start == 0 and shards[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(shards, shards[1:]))
        got = [as_tuple(i) for shard in shards for i in read_shard(path, fmt, shard)]
        assert got == whole, (path.name, size, len(shards))
        most = max(most, len(shards))
    return most


@pytest.mark.parametrize("name, fmt", FIXTURES)
def test_shards_of_reader_fixtures(reader_fixtures, name, fmt):
    assert assert_shards_read_like_whole(reader_fixtures / name, fmt, range(1, 400, 13)) >= 2


def test_meddialog_shards_with_crlf_bom_bad_bytes_and_orphans(tmp_path):
    data = (b"\xef\xbb\xbf" + "stray line\r\n\r\nid=1\r\nhttp://x/1\r\n\r\nDialogue\r\n病人：\r\n头痛。\r\n医生：\r\n"
            "偏头痛。 \r\n\r\n".encode()
            + "id=2\nhttp://x/2\n\nDialogue\n病人：\n".encode() + b"\xff broken\n" + "医生：\n嗯。\n\n".encode()
            + "id=3\nhttp://x/3\n\nDialogue\n病人：\n咳嗽。\n医生：\n感冒。\n\nhttp://x/4\n\nDialogue\n病人：\n"
              "发烧。\n医生：\n流感。\nid=5\nhttp://x/5\n\nDialogue\n病人：\n腹泻\n医生：\n肠炎".encode())
    path = tmp_path / "messy.txt"
    path.write_bytes(data)
    records = [r for r in read_source(path, "meddialog_raw") if not isinstance(r, Quarantined)]
    assert [r.id for r in records] == ["1", "3", "5"]
    assert assert_shards_read_like_whole(path, "meddialog_raw", range(1, len(data), 3)) >= 5


def test_jsonl_shards_with_bom_blank_lines_and_bad_lines(tmp_path):
    path = tmp_path / "pretrain.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n\r\n{"text": "b\xff"}\n{bad json}\n{"text": "c"}')
    assert assert_shards_read_like_whole(path, "cmd_pretrain", range(1, 60)) >= 4


def test_a_json_list_file_is_one_shard(reader_fixtures):
    path = reader_fixtures / "sharegpt_list.json"
    (shard,) = plan_shards(path, "sharegpt", 10)
    assert (shard.start, shard.end, shard.line) == (0, path.stat().st_size, 1)
    kuake = reader_fixtures / "kuake_qic.json"
    assert plan_shards(kuake, "kuake_qic", 10) == [Shard(0, kuake.stat().st_size, 1)]
    with pytest.raises(ValueError, match="cannot be read in byte ranges"):
        list(read_shard(path, "sharegpt", Shard(0, 10, 1)))


RECIPE = """
name: sharded
seed: 5
sources:
  - {name: dialogues, path: "${corpus}/meddialog_raw_zh.txt", format: meddialog_raw, origin: real_doctor,
     language: zh, transforms: [merge_consecutive_speakers, normalize_roles, scrub_pii]}
  - {name: qa, path: "${corpus}/huatuo_*_zh.jsonl", format: huatuo_sft, origin: distilled, transforms: [scrub_pii]}
outputs:
  sft:
    total: 700
    mix:
      - {source: dialogues, fraction: 0.4}
      - {source: qa, fraction: 0.6}
  prompts:
    mix: [{source: dialogues, count: 150}]
dedup: {exact: true, near: {threshold: 0.8}}
"""


def sharded_batches(size: int, batch: int):
    """A local stand-in for the Ray runner: every file in shards of ``size`` bytes, small batches."""
    def run(jobs, files):
        for job, source_files in zip(jobs, files):
            for file in source_files:
                for shard in plan_shards(file, job.spec.format, size):
                    for items in batched_items(job, file, size=batch, shard=shard):
                        yield process_batch(job, str(file), items)
    return run


def test_sharded_build_writes_the_same_rows(recipe_corpus, write_recipe, tmp_path):
    resolved = load_recipe(write_recipe(RECIPE), variables={"corpus": str(recipe_corpus)})
    whole = build(resolved, tmp_path / "whole")
    sharded = build(resolved, tmp_path / "sharded", run_batches=sharded_batches(20_000, 37))
    assert sharded["outputs"] == whole["outputs"] and sharded["sources"] == whole["sources"]
    for kind in ("sft", "prompts"):
        for split in ("train", "validation", "test"):
            a = pq.read_table(tmp_path / "whole" / kind / f"{split}.parquet")
            b = pq.read_table(tmp_path / "sharded" / kind / f"{split}.parquet")
            assert a.num_rows > 0 and a.equals(b), (kind, split)
