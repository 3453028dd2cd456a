"""``medalign run`` and ``medalign submit``: run a job YAML locally or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from data_recipes.cli import add_build_backend

    add_build_backend("ray", _ray_data_build)   # `medalign data build --ray` (data_recipes never imports jobs)
    run = sub.add_parser(
        "run", help="run a pipeline job (reuses complete stages)",
        description="Run the stages of a job YAML as Ray tasks. Stages whose directory already "
                    "holds a complete manifest for the same config and inputs are reused; a stage "
                    "killed midway is redone or resumed. Example: medalign run jobs/quickstart.yaml "
                    "stages.ppo.config.steps=40")
    run.add_argument("job", help="job YAML, e.g. jobs/quickstart.yaml")
    run.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value",
                     help="config overrides, e.g. seed=1 stages.sft.config.epochs=2 ray.address=auto")
    run.add_argument("--until", metavar="STAGE", help="run this stage and what it needs, nothing after")
    run.add_argument("--only", metavar="STAGE", action="append", help="bring only these stages (and their inputs) up to date")
    run.add_argument("--force", metavar="STAGE", action="append", default=[],
                     help="rerun this stage from an empty directory even if complete (repeatable)")
    run.add_argument("--no-ray", action="store_true", help="run stages one by one in this process (debugging)")
    run.add_argument("--plan", action="store_true", help="print the resolved stages and their inputs, run nothing")
    run.add_argument("--json", action="store_true",
                     help="with --plan: print every stage's resolved config, inputs, resources and key as JSON")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    run.add_argument("--verbose", dest="stream_logs", action="store_true",
                     help="stream every stage's log to the terminal (they always go to "
                          "runs/<job>/<stage>-<key>/logs/stage.log)")
    run.set_defaults(func=_run)

    submit = sub.add_parser(
        "submit", help="submit a job to a Ray cluster (Ray Jobs API) and follow it",
        description="Submit `medalign run JOB` to a Ray cluster through the Jobs API and stream its log. "
                    "The working directory is uploaded without .venv, runs/ and .git (the checkout's git "
                    "commit travels in MEDALIGN_GIT_COMMIT and reaches the manifests). Outputs go to an "
                    "absolute run directory on storage the cluster's nodes share: --run-dir or the job's "
                    "run_dir. Token auth: set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH to a file holding it); "
                    "it is sent as a header and never written anywhere. Example: medalign submit "
                    "jobs/quickstart.yaml --address http://head:8265 --run-dir /mnt/shared/runs --until sft")
    submit.add_argument("job", nargs="?", help="job YAML inside the working directory (not with --follow)")
    submit.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value")
    submit.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://head:8265")
    submit.add_argument("--run-dir", metavar="DIR",
                        help="absolute run directory on the cluster's shared storage (default: the job's run_dir)")
    submit.add_argument("--until", metavar="STAGE", help="as medalign run --until")
    submit.add_argument("--only", metavar="STAGE", action="append", help="as medalign run --only (repeatable)")
    submit.add_argument("--force", metavar="STAGE", action="append", default=[],
                        help="as medalign run --force (repeatable)")
    submit.add_argument("--no-wait", action="store_true",
                        help="return after submitting; print how to follow the job and where its report goes")
    submit.add_argument("--follow", metavar="JOB_ID", help="follow a job submitted earlier (its log, then its status)")
    submit.set_defaults(func=_submit)

    from jobs import gpu_plan_cli

    gpu_plan_cli.register(sub)          # medalign plan JOB --gpus N --gpu-mem GB


def _run(args: argparse.Namespace) -> int:
    from medalign.errors import UserError

    from jobs.plan import load_plan
    from jobs.runner import run_job, select_stages
    from jobs.view import JobView

    plan = load_plan(args.job, args.overrides)
    if args.json and not args.plan:
        raise UserError("--json goes with --plan: medalign run JOB --plan --json")
    select_stages(plan, args.until, args.only, args.force)     # unknown names fail before any work
    if args.plan:
        return _print_plan(plan, args.json)
    term = _terminal()
    stream_logs = args.stream_logs or args.verbose
    view = JobView(lambda s: print(s, file=term, flush=True), live=term.isatty() and not stream_logs,
                   stream_logs=stream_logs, console_file=term)
    report = run_job(plan, until=args.until, only=args.only, force=args.force,
                     use_ray=not args.no_ray, progress=not args.no_progress,
                     echo=view.echo, view=view)
    return 0 if report["status"] == "ok" else 1


def _ray_data_build(resolved, out, progress: bool = True, staging=None) -> dict:
    """``medalign data build --ray``: the recipe's per-record work on Ray Data (same output)."""
    from jobs.ray_data_build import build_with_ray

    return build_with_ray(resolved, out, progress=progress, staging=staging)


def _print_plan(plan, as_json: bool) -> int:
    if as_json:
        import json

        from jobs.execute import describe_plan

        print(json.dumps(describe_plan(plan), indent=2, ensure_ascii=False))
        return 0
    width = max([14, *(len(n) for n in plan.stages)])
    kind_width = max([13, *(len(s.kind) for s in plan.stages.values())])
    for name, stage in plan.stages.items():
        inputs = ", ".join(f"{k}<-{r.stage or r.external}" for k, r in stage.inputs.items())
        print(f"{name:<{width}} kind={stage.kind:<{kind_width}} inputs: {inputs or '-'}")
    return 0


def _terminal():
    """A stream to this process's terminal that stays there while an in-process stage sends
    stdout and stderr to its log file (``--no-ray``)."""
    import os

    try:
        return open(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace", buffering=1)
    except (OSError, ValueError, AttributeError):
        return sys.stdout


def _submit(args: argparse.Namespace) -> int:
    from medalign.errors import UserError

    from jobs import submit
    from jobs.plan import load_plan
    from jobs.runner import select_stages

    if args.follow:
        if args.job:
            raise UserError("--follow JOB_ID follows a job submitted earlier; give no job file with it")
        return submit.follow(args.follow, args.address)
    if not args.job:
        raise UserError("medalign submit needs a job file (or --follow JOB_ID)")
    plan = load_plan(args.job, args.overrides)      # fail here, not on the cluster, on a bad YAML
    select_stages(plan, args.until, args.only, args.force)
    run_dir = submit.remote_run_dir(plan.job.run_dir, args.run_dir, args.job)
    return submit.submit_job(args.job, args.overrides, args.address, run_dir=run_dir, job_name=plan.job.name,
                             until=args.until, only=args.only, force=args.force, wait=not args.no_wait)


if __name__ == "__main__":
    sys.exit(2)
