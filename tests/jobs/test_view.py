"""The driver's view and the stage's log and progress files behind it."""

from __future__ import annotations

import logging
import sys
import time

from medalign.stagelog import capture_output, read_progress, report_progress, tail_lines

from jobs.view import JobView, format_seconds, progress_text


def test_a_stage_writes_its_output_to_its_log_and_its_bars_to_progress_json(tmp_path, capfd):
    from tqdm.auto import tqdm

    stage_dir = tmp_path / "sft-abc"
    with capture_output(stage_dir / "logs" / "stage.log"), report_progress(stage_dir / "logs" / "progress.json"):
        print("a print")
        # a library logger that propagates to the root (transformers' own handler, once imported by
        # another test, writes to the stream pytest captured at that time; in a stage process it is
        # the process's fd 2, which capture_output redirects)
        logging.getLogger("a_library.module").warning("a library warning")
        bar = tqdm(total=10, desc="train", unit="step")
        bar.update(4)
        bar.set_postfix(loss=1.25)
        seen = read_progress(stage_dir)
        bar.close()
    out, err = capfd.readouterr()
    assert "a print" not in out + err and "a library warning" not in out + err      # the terminal stays calm
    log = (stage_dir / "logs" / "stage.log").read_text()
    assert "a print" in log and "a library warning" in log and "train" in log
    assert seen["bars"][0]["desc"] == "train" and seen["bars"][0]["total"] == 10
    assert read_progress(stage_dir)["bars"] == []                 # closed bars leave the record
    print("after")                                                # restored afterwards
    assert "after" in capfd.readouterr().out and sys.stdout is not None


def test_progress_text_gives_position_eta_and_the_bar_metrics():
    record = {"bars": [{"desc": "ppo", "n": 10, "total": 40, "rate": 2.0, "postfix": "reward=1.2"}]}
    assert progress_text(record, 5.0) == "ppo 10/40 25% ETA 15s reward=1.2"
    assert progress_text({"bars": [{"desc": "reading", "n": 7, "total": None, "rate": None}]}, 1) == "reading 7"
    assert progress_text(None, 1) == "" and format_seconds(3725) == "1h02m"


def test_line_view_prints_events_progress_and_a_failure_tail(tmp_path):
    lines: list[str] = []
    view = JobView(lines.append, line_progress_s=0.0)
    stage_dir = tmp_path / "judge-1"
    (stage_dir / "logs").mkdir(parents=True)
    (stage_dir / "logs" / "stage.log").write_text("".join(f"line {i}\n" for i in range(30)) + "Boom\n")
    (stage_dir / "logs" / "progress.json").write_text(
        '{"time": 0, "bars": [{"desc": "judging", "n": 5, "total": 10, "rate": 1.0}]}')
    view.started("judge", "judge", stage_dir)
    view.poll()
    view.failed("judge", stage_dir, "rejected by its acceptance rule: only 0.0% ok")
    text = "\n".join(lines)
    assert "> judge" in lines[0] and "judging 5/10 50% ETA 5s" in lines[1]
    assert "! judge         FAILED   rejected by its acceptance rule" in text
    assert "| Boom" in text and "| line 11" in text and "| line 10" not in text   # the last 20 lines
    assert f"log: {stage_dir / 'logs' / 'stage.log'}" in text


def test_verbose_view_streams_new_log_lines(tmp_path):
    lines: list[str] = []
    view = JobView(lines.append, stream_logs=True, line_progress_s=1e9)
    stage_dir = tmp_path / "sft-1"
    log = stage_dir / "logs" / "stage.log"
    log.parent.mkdir(parents=True)
    log.write_text("first\npartial")
    view.started("sft", "sft", stage_dir)
    with view.watching():
        time.sleep(0.2)
        view.poll()
        with open(log, "a") as f:
            f.write(" line\nthird\n")
        view.poll()
    view.finished("sft", "sft", "ran", {"timings": {"wall_s": 1.0}, "metrics": {"train_loss_end": 1.5}})
    streamed = [line for line in lines if " | " in line]
    assert streamed == ["  sft | first", "  sft | partial line", "  sft | third"]
    assert lines[-1].startswith("+ sft           ran") and "train_loss_end=1.5" in lines[-1]


def test_tail_lines_keeps_the_last_state_of_a_progress_bar(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text("start\nbar 10%\rbar 50%\rbar 100%\nend\n")
    assert tail_lines(log, 5) == ["start", "bar 100%", "end"]


def test_submitted_job_logs_hold_no_blank_or_bare_prefixed_lines():
    from jobs.submit import printable_lines

    chunk = "(_run_stage pid=42) \n\n> sft running\n(_run_stage pid=42, ip=10.0.0.1)   \nstep 1\rstep 2\n   \n"
    assert printable_lines(chunk) == ["> sft running", "step 2"]
