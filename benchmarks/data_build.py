"""Throughput and memory of a full data build on N synthetic MedDialog consultations.

    python benchmarks/data_build.py --n 100000 [--lang zh] [--no-near] [--ray [--num-cpus 2]]
    python benchmarks/data_build.py --input meddialog.txt     # an existing MedDialog raw file

Streams N consultations in MedDialog raw-text format to a temp file (D1's
``iter_meddialog_raw_blocks``), then builds a recipe over it: parse, merge speakers, normalise
roles, scrub PII, filter, exact + MinHash near-dup removal, per-turn SFT examples and final-turn
prompts, splits by consultation id, Parquet. Prints consultations per wall second and per CPU
second of the build (generation not counted; on a shared machine the CPU figure is the stable
one), the phase timings, the dedup index size per record, and the peak RSS of this process.
With --ray the CPU seconds of the Ray worker processes are added (and printed apart); the peak
RSS is the driver's.
Target (issue 3): >= 10,000 consultations/s per core and < 2 GB peak RSS at N = 1,000,000.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """
name: bench
seed: 0
sources:
  - name: meddialog
    path: meddialog.txt
    format: meddialog_raw
    origin: real_doctor
    language: {lang}
    transforms:
      - merge_consecutive_speakers
      - normalize_roles
      - scrub_pii
      - {{name: filter_length, max_chars: 4000, min_assistant_turns: 1}}
outputs:
  sft:
    mix: [{{source: meddialog, count: all, build: per_turn_examples}}]
  prompts:
    mix: [{{source: meddialog, count: all, build: final_turn_prompt}}]
splits: {{train: 0.98, validation: 0.01, test: 0.01}}
dedup:
  exact: true
  near: {near}
"""


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_consultations(path: Path, n: int, lang: str) -> float:
    from data_recipes.synthetic.generate import iter_meddialog_raw_blocks

    t0 = time.perf_counter()
    with open(path, "w", encoding="utf-8") as f:
        for block in iter_meddialog_raw_blocks(n, seed=0, lang=lang):
            f.write(block)
    return time.perf_counter() - t0


def ray_cpu_seconds() -> float:
    """User + system CPU seconds of the live Ray worker processes of the local Ray this process
    started (its descendants: another session's Ray on a shared machine is not counted)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            name, cmd, times = proc.name(), " ".join(proc.cmdline()), proc.cpu_times()
        except psutil.Error:                # exited meanwhile
            continue
        if name.startswith("ray::") or "default_worker.py" in cmd:
            total += times.user + times.system
    return total


def ray_build(resolved, out: Path, num_cpus: int | None) -> tuple[dict, float, float, float]:
    """The build on a local Ray: (report, wall s, driver CPU s, Ray workers' CPU s)."""
    import ray

    from jobs.ray_data_build import build_with_ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        workers0 = ray_cpu_seconds()
        t0, cpu0 = time.perf_counter(), time.process_time()
        report = build_with_ray(resolved, out, progress=sys.stderr.isatty())
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return report, wall, cpu, ray_cpu_seconds() - workers0
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="consultations (default 100,000)")
    parser.add_argument("--lang", choices=["zh", "en"], default="zh")
    parser.add_argument("--no-near", action="store_true", help="exact dedup only (no MinHash)")
    parser.add_argument("--keep", type=Path, default=None, help="build into this folder and keep it")
    parser.add_argument("--ray", action="store_true", help="per-record work on Ray Data (jobs/ray_data_build.py)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--input", type=Path, default=None,
                        help="build this MedDialog raw file instead of generating N consultations")
    args = parser.parse_args(argv)

    from data_recipes.build import build
    from data_recipes.recipe_load import load_recipe

    work = Path(tempfile.mkdtemp(prefix="medalign-bench-"))
    try:
        if args.input:
            (work / "meddialog.txt").symlink_to(args.input.resolve())
        else:
            gen_s = write_consultations(work / "meddialog.txt", args.n, args.lang)
            size_mb = (work / "meddialog.txt").stat().st_size / 2**20
            print(f"generated {args.n:,} consultations ({size_mb:,.0f} MB) in {gen_s:.1f}s; "
                  f"peak RSS so far {peak_rss_mb():,.0f} MB", flush=True)
        near = "null" if args.no_near else "{threshold: 0.8, num_perm: 64, bands: 16}"
        (work / "bench.yaml").write_text(RECIPE.format(lang=args.lang, near=near), encoding="utf-8")
        resolved = load_recipe(work / "bench.yaml")
        out = args.keep or work / "out"
        workers = 0.0
        if args.ray:
            report, wall, cpu, workers = ray_build(resolved, out, args.num_cpus)
        else:
            t0, cpu0 = time.perf_counter(), time.process_time()
            report = build(resolved, out, progress=sys.stderr.isatty())
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        src = report["sources"]["meddialog"]
        n = src["records_read"] + src["quarantined"]
        print(f"build: {wall:.1f}s wall, {cpu + workers:.1f}s CPU"
              + (f" ({cpu:.1f}s driver + {workers:.1f}s Ray workers)" if args.ray else "")
              + f" -> {n / wall:,.0f} consultations/s wall, {n / (cpu + workers):,.0f} per CPU-second")
        print(f"  phases: {report['timings']}")
        print(f"  read {src['records_read']:,}, quarantined {src['quarantined']}, kept {src['kept']:,}, "
              f"exact dup {src['exact_duplicates']:,}, near dup {src['near_duplicates']:,}, "
              f"PII spans {src['pii_spans']}")
        print(f"  rows: sft {report['outputs']['sft']['total_actual']:,}, "
              f"prompts {report['outputs']['prompts']['total_actual']:,}")
        print(f"  dedup index: {report['dedup']['index_bytes'] / 2**20:,.1f} MB "
              f"({report['dedup']['index_bytes_per_record']} bytes/record)")
        print(f"peak RSS {peak_rss_mb():,.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
