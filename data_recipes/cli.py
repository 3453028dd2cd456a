"""``medalign data ...``: validate, build, inspect and preview data recipes; write the demo corpus.

    medalign data validate quickstart --var corpus=corpus/
    medalign data build quickstart outputs.sft.total=500 --synthetic 600 --out runs/data/quickstart
    medalign data build my_recipe.yaml --var corpus=/data/meddialog --ray
    medalign data stats runs/data/quickstart
    medalign data preview quickstart --var corpus=corpus/ -n 3
    medalign data synth corpus/ --n 600 --languages zh en

Nothing heavy is imported at module level (handlers import what they need). ``--ray`` runs a
build backend that ``jobs/cli.py`` adds with :func:`add_build_backend` (jobs/ is the only Ray
code; data_recipes never imports it).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Callable

from medalign.config import ConfigError

# (resolved recipe, out dir, progress=bool) -> build report, like data_recipes.build.build
BuildBackend = Callable[..., dict]
_BACKENDS: dict[str, BuildBackend] = {}


def add_build_backend(name: str, build: BuildBackend) -> None:
    """Let ``medalign data build --<name>`` run ``build(resolved, out, progress=...)`` (``jobs``
    adds ``ray``: the per-record work on Ray Data)."""
    _BACKENDS[name] = build

_RECIPE_HELP = ("recipe: a YAML path, or a name in data_recipes/recipes/ (e.g. quickstart). "
                "Source paths are relative to the recipe's folder; ${name} comes from --var")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medalign data`` and its sub-commands."""
    data = subparsers.add_parser("data", help="data recipes: validate, build, stats, preview, synth",
                                 description="Build SFT, prompt, preference, ranked and pretraining "
                                             "datasets from YAML recipes (data_recipes/recipes/).")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("validate", help="check a recipe without building it",
                       description="Validate a recipe: schema (unknown keys, transforms), formats, "
                                   "sources, weights and that every source file exists; then read "
                                   "every source as the build would (formats, malformed records, empty "
                                   "files, dedup) and check that every output's row counts can be met. "
                                   "Writes nothing. Prints file:line: field: problem for each error.")
    _recipe_args(p)
    p.add_argument("--no-read", action="store_true",
                   help="only the checks that need no reading (schema, references, files exist): fast on big data")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no INFO log lines")
    p.set_defaults(func=_validate)

    p = sub.add_parser("build", help="build a recipe into Parquet datasets",
                       description="Build a recipe: read, transform, scrub, dedup, mix, split and write "
                                   "<out>/{sft,prompts,preferences,ranked,pretrain}/{train,validation,test}.parquet, "
                                   "build_report.json and quarantine.jsonl. The build is written beside <out> "
                                   "and moved in when complete: a failed build leaves the previous one as it was.")
    _recipe_args(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/data/<recipe name>)")
    p.add_argument("--synthetic", type=int, metavar="N", default=None,
                   help="first write the synthetic demo corpus with N consultations to <out>/corpus and set ${corpus} to it")
    p.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    p.add_argument("--languages", nargs="+", default=["zh"], choices=["zh", "en"],
                   help="languages of the synthetic corpus (default zh)")
    p.add_argument("--outbreak", type=int, metavar="N", default=0,
                   help="with --synthetic: also write N consultations about the new-outbreak family "
                        "(meddialog_outbreak_<lang>.txt, read by the meddialog_outbreak recipe; default 0)")
    p.add_argument("--ray", action="store_true",
                   help="run the per-record work on Ray Data, big files cut into byte-range shards (jobs/ray_data_build.py); same output")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no INFO log lines")
    p.set_defaults(func=_build)

    p = sub.add_parser("stats", help="summarise a built dataset folder (tables + length histograms)",
                       description="Counts per output, split, source and origin, language mix, PII "
                                   "spans scrubbed, duplicates and quarantine, from build_report.json "
                                   "and the Parquet files; writes length histograms (one outline per source, "
                                   "x axis clipped at the 99th percentile) as PNG.")
    p.add_argument("dir", type=Path, help="a folder written by `medalign data build` (or a data stage)")
    p.add_argument("--plots", type=Path, default=None, help="where to write the PNGs (default: <dir>/stats)")
    p.add_argument("--no-plots", action="store_true", help="skip the histograms (faster)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    p.set_defaults(func=_stats)

    p = sub.add_parser("preview", help="show the first records of each source and the rows they give",
                       description="Read the first N records of each source, apply its transforms and "
                                   "show the rows each output would get from them (no dedup, no mixing).")
    _recipe_args(p)
    p.add_argument("-n", type=int, default=5, help="records per source (default 5)")
    p.add_argument("--source", default=None, help="only this source (a source name of the recipe)")
    p.set_defaults(func=_preview)

    p = sub.add_parser("synth", help="write the synthetic demo corpus in the real public formats",
                       description="Write the seeded synthetic corpus (MedDialog raw text, HuatuoGPT "
                                   "jsonl, CMD, ranked, Safety-Prompts, KUAKE-QIC-like ...) to a folder.")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--n", type=int, default=600, help="consultations (other files scale with it; default 600)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--languages", nargs="+", default=["zh", "en"], choices=["zh", "en"], help="languages (default zh en)")
    p.add_argument("--outbreak", type=int, metavar="N", default=0,
                   help="also write N consultations about the new-outbreak family (meddialog_outbreak_<lang>.txt; default 0)")
    p.set_defaults(func=_synth)


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help=_RECIPE_HELP)
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="value of ${NAME} in source paths (repeatable), e.g. --var corpus=data/")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="recipe overrides right after the recipe, e.g. outputs.sft.total=500 seed=1")


def _variables(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError([f"--var {pair!r}: expected NAME=VALUE"])
        out[name] = value
    return out


def _load(args: argparse.Namespace):
    from data_recipes.recipe_load import find_recipe, load_recipe

    return load_recipe(find_recipe(args.recipe), args.overrides, _variables(args.var))


def _quiet(args: argparse.Namespace) -> bool:
    """With --quiet: no INFO log lines from here on (warnings and errors still show)."""
    if getattr(args, "quiet", False):
        logging.getLogger().setLevel(logging.WARNING)
        return True
    return False


def _read_counts(source: dict) -> str:
    """", 70 records read, 7 quarantined (6 unanswered), 63 kept" for ``data validate``."""
    unanswered = f" ({source['unanswered']} unanswered)" if source["unanswered"] else ""
    return f", {source['read']} records read, {source['quarantined']} quarantined{unanswered}, {source['kept']} kept"


def _validate(args: argparse.Namespace) -> int:
    quiet = _quiet(args)
    from data_recipes.transforms import OUTPUT_KINDS

    resolved = _load(args)
    recipe = resolved.recipe
    if not args.no_read:
        from data_recipes.build import check_build

        counts = check_build(resolved, progress=not quiet)
    print(f"ok: {resolved.path} (recipe {recipe.name}, hash {resolved.recipe_hash})")
    for src, files in zip(recipe.sources, resolved.source_files):
        read = "" if args.no_read else _read_counts(counts["sources"][src.name])
        print(f"  source {src.name}: {src.format}, {src.origin}, {len(files)} file(s){read}")
    for kind in OUTPUT_KINDS:
        output = getattr(recipe.outputs, kind)
        if output:
            parts = ", ".join(f"{c.source}:{c.fraction if c.fraction is not None else c.count}" for c in output.mix)
            print(f"  output {kind}: {'total ' + str(output.total) + ', ' if output.total else ''}{parts}")
            if not args.no_read:
                rows = ", ".join(f"{c['source']} {c['requested']}/{c['available']}" for c in counts["outputs"][kind])
                print(f"    rows requested/available: {rows}")
    for warning in [] if args.no_read else counts["warnings"]:
        print(f"  warning: {warning}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from data_recipes.recipe_load import find_recipe, load_yaml
    from data_recipes.stage import SyntheticCorpus, build_recipe

    quiet = _quiet(args)
    out = args.out
    if out is None:
        name = load_yaml(find_recipe(args.recipe)).get("name", Path(args.recipe).stem)
        out = Path("runs") / "data" / str(name)
    synthetic = None
    if args.synthetic is not None:
        synthetic = SyntheticCorpus(n_consultations=args.synthetic, seed=args.synthetic_seed,
                                    languages=list(args.languages),
                                    sizes={"meddialog_outbreak": args.outbreak} if args.outbreak else {})
    elif args.outbreak:
        raise ConfigError(["--outbreak goes with --synthetic N (it adds a file to the generated corpus)"])
    backend = None
    if args.ray:
        if "ray" not in _BACKENDS:
            raise ConfigError(["--ray: no Ray build backend; it comes with the jobs package (jobs/), "
                               "run through the `medalign` command of a full checkout, or drop --ray"])
        backend = _BACKENDS["ray"]
    report = build_recipe(args.recipe, args.overrides, _variables(args.var), out, synthetic,
                          progress=not quiet, backend=backend)
    print(f"built {report['recipe']['name']} into {out} in {report['timings']['total_s']}s")
    for kind, section in report["outputs"].items():
        print(f"  {kind}: {section['total_actual']} rows {section['by_split']}")
    if report.get("eval"):
        sets = report["eval"]["sets"]
        print("  eval sets: " + ", ".join(f"{name} {s['cases']} cases" for name, s in sets.items())
              + f"; training rows removed as overlapping them: {report['eval']['removed_training_rows'] or 0}")
    unanswered = report["quarantine"]["unanswered"]
    print(f"  quarantined: {report['quarantine']['total']}{f' ({unanswered} unanswered)' if unanswered else ''}  "
          f"duplicates: exact {report['dedup']['exact']}, "
          f"near {report['dedup']['near']}  (details: {out / 'build_report.json'})")
    for warning in report["warnings"]:
        print(f"  warning: {warning}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from data_recipes.stats import dataset_stats, print_stats

    summary = dataset_stats(args.dir, args.plots, plot=not args.no_plots)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_stats(summary)
    return 0


def _preview(args: argparse.Namespace) -> int:
    from data_recipes.preview import preview

    for line in preview(_load(args), args.n, args.source):
        print(line)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from data_recipes.synthetic.generate import write_corpus

    summary = write_corpus(args.out, n_consultations=args.n, seed=args.seed, languages=tuple(args.languages),
                           sizes={"meddialog_outbreak": args.outbreak} if args.outbreak else None)
    for f in summary.get("files", []):
        print(f"  {f.get('file')}: {f.get('records')} records ({f.get('format')})")
    print(f"wrote the synthetic corpus to {args.out}")
    return 0
