"""How fast the audit workbench opens and filters a large transcript in headless Chromium.

Writes a synthetic transcript of ``--n`` judgments (:mod:`judges.demo_transcript`), the page
(``medalign audit view``), opens it from disk in Debian's chromium and prints: page size, time
to write it, time from navigation to a usable page, and the time of a status filter, an
order-disagreement filter, a first text search (it reads every detail chunk) and opening a
comparison.

    .venv/bin/python benchmarks/audit_view.py              # 100,000 judgments
    .venv/bin/python benchmarks/audit_view.py --n 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from judges.audit_browser import chromium_session
    from judges.audit_view import write_view
    from judges.demo_transcript import write_demo_transcript

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="judgments (default 100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, html = Path(tmp) / "transcripts.jsonl", Path(tmp) / "audit.html"
        start = time.perf_counter()
        n = write_demo_transcript(path, args.n)
        print(f"transcript: {n} judgments, {path.stat().st_size / 1e6:.0f} MB, "
              f"{time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        report = write_view([path], html)
        print(f"page: {report['bytes'] / 1e6:.1f} MB, written in {time.perf_counter() - start:.1f} s")
        with chromium_session(tmp) as d:
            def ready():
                d.get(html.resolve().as_uri())
                WebDriverWait(d, 120).until(lambda d: d.execute_script("return document.body.dataset.ready"))
            count = lambda: d.find_element("id", "count").get_attribute("data-matching")  # noqa: E731
            print(f"open (navigation to a usable page): {_timed(ready):.2f} s, {count()} rows")
            sel = Select(d.find_element("id", "f-status"))
            print(f"status filter: {_timed(lambda: sel.select_by_visible_text('parse_error')):.3f} s, "
                  f"{count()} rows")
            sel.select_by_visible_text("all")
            box = d.find_element("id", "f-disagree")
            print(f"disagreement filter: {_timed(box.click):.3f} s, {count()} rows")
            box.click()
            search = d.find_element("id", "f-search")
            took = _timed(lambda: search.send_keys("Ignore the previous\n"))
            print(f"first text search: {took:.2f} s, {count()} rows")
            row = d.find_elements("css selector", "#rows tr")[0]
            print(f"open a comparison: {_timed(row.click):.3f} s")
            errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
            print(f"console errors: {len(errors)}")


if __name__ == "__main__":
    main()
