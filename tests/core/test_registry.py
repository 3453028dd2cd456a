"""Each stage module declares its name, config and inputs once; the rest derives from that."""

from __future__ import annotations

import re

import pytest

from medalign.config import StrictModel
from medalign.registry import BUILTIN_STAGES, kinds_in, stage_module
from medalign.stage import Input, declared_inputs, inputs_summary

DATASETS = {"sft", "prompts", "preferences", "ranked", "pretrain", "cases", "eval"}


@pytest.mark.parametrize("kind", list(BUILTIN_STAGES))
def test_every_builtin_stage_declares_itself(kind):
    module = stage_module(kind)
    assert module.NAME == kind
    assert issubclass(module.Config, StrictModel) and callable(module.run)
    for name, spec in module.INPUTS.items():
        assert isinstance(spec, Input), f"{kind}.{name}: declare inputs with medalign.stage.Input"
        assert spec.kinds and set(spec.kinds) <= set(BUILTIN_STAGES), (kind, name, spec.kinds)
        assert set(spec.reads) <= DATASETS and spec.doc, (kind, name)
        assert not spec.reads or "data" in spec.kinds, f"{kind}.{name} reads datasets but no data stage feeds it"


def test_medalign_train_offers_the_alignment_stages_with_their_declared_inputs(capsys):
    from medalign.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(kinds_in("alignment")) + "}" in text
    for kind in kinds_in("alignment"):
        assert f"{kind}: {inputs_summary(stage_module(kind))}" in text


def test_contracts_table_lists_each_stage_with_its_declared_inputs(repo_root):
    """docs/CONTRACTS.md's stage table names each module and its inputs as the code declares them."""
    text = (repo_root / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in BUILTIN_STAGES:
            rows[cells[0]] = cells
    assert set(rows) == set(BUILTIN_STAGES)
    for kind, cells in rows.items():
        assert cells[1] == f"`{BUILTIN_STAGES[kind]}`", kind
        documented = re.findall(r"`([a-z_]+)`", cells[2])
        assert documented == list(declared_inputs(stage_module(kind))), (kind, documented)
