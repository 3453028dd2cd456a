"""Pieces of the project's self-contained HTML reports (the job report, the evaluation report):
one stylesheet, matplotlib figures embedded as base64 PNGs, nothing fetched over a network.

    fig, axes = figure(2)                  # a row of panels (matplotlib's object API, no pyplot)
    axes[0].plot(...)
    html = img(png(fig), "what the figure shows")

Every text that came from a config, a data set or a model goes through ``html.escape`` (callers)
and, inside a figure, through :func:`mpl_text`.
"""

from __future__ import annotations

import base64
import html
import io

CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f2f2f2}.failed{color:#b00}.note{color:#666}
img{max-width:100%}"""


def figure(n_panels: int, height: float = 3.2, width: float = 4.2):
    """(figure, list of axes): one row of ``n_panels`` panels."""
    from matplotlib.figure import Figure    # the object API: no pyplot state, no GUI backend

    fig = Figure(figsize=(max(5.0, width * n_panels), height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def img(data: bytes, alt: str) -> str:
    """An <img> holding the PNG ``data`` inline."""
    return f"<p><img alt=\"{html.escape(alt)}\" src=\"data:image/png;base64,{base64.b64encode(data).decode('ascii')}\"></p>"


def mpl_text(text: str) -> str:
    """Text for matplotlib: a ``$`` would start math mode (and fail on a name like ``a$b``)."""
    return str(text).replace("$", r"\$")


def page(title: str, body: list[str]) -> str:
    """A whole page: the stylesheet, the title, the body parts."""
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
