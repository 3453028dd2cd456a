"""Digests, stage keys and manifests."""

from __future__ import annotations

import json

from medalign.artifacts import digest_path, read_manifest, stage_key, write_manifest


def test_digest_depends_on_names_and_bytes_not_on_bookkeeping(tmp_path):
    d = tmp_path / "out"
    (d / "model").mkdir(parents=True)
    (d / "model" / "w.bin").write_bytes(b"abc")
    (d / "a.txt").write_text("1")
    first = digest_path(d)
    (d / "manifest.json").write_text("{}")
    (d / "logs").mkdir()
    (d / "logs" / "x.log").write_text("noise")
    assert digest_path(d, exclude={"logs"}) == first
    (d / "a.txt").write_text("2")
    assert digest_path(d) != first
    (d / "a.txt").write_text("1")
    (d / "a.txt").rename(d / "b.txt")
    assert digest_path(d) != first


def test_stage_key_changes_with_config_and_inputs():
    base = stage_key("sft", {"lr": 1}, {"data": "aa"})
    assert base == stage_key("sft", {"lr": 1}, {"data": "aa"})
    assert base != stage_key("sft", {"lr": 2}, {"data": "aa"})
    assert base != stage_key("sft", {"lr": 1}, {"data": "ab"})
    assert base != stage_key("rsft", {"lr": 1}, {"data": "aa"})


def test_manifest_is_written_last_and_read_back(tmp_path):
    (tmp_path / "out.txt").write_text("x")
    assert read_manifest(tmp_path) is None
    m = write_manifest(tmp_path, stage="toy", key="k1", config={"a": 1},
                       inputs={"data": {"path": "p", "digest": "d"}}, metrics={"loss": 0.5},
                       timings={"wall_s": 1.0})
    assert read_manifest(tmp_path) == json.loads((tmp_path / "manifest.json").read_text()) == m
    assert m["outputs"]["files"] == ["out.txt"]
    assert m["versions"]["python"]
    (tmp_path / "manifest.json").write_text("{truncated")
    assert read_manifest(tmp_path) is None


def test_secret_looking_arguments_are_redacted():
    from medalign.artifacts import redact_command

    cmd = "medalign run job.yaml stages.judge.config.api_key=sk-123 seed=1 token=abc"
    assert redact_command(cmd) == "medalign run job.yaml stages.judge.config.api_key=*** seed=1 token=***"
