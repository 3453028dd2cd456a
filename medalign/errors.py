"""Errors a user can fix. The ``medalign`` command prints them as one line, without a traceback.

Raise :class:`UserError` (or :class:`medalign.config.ConfigError` for a config file) for a
mistake in what the user gave: a missing file, an unknown stage name, an input a stage cannot
read. Any other exception is an internal error and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; the message says what to fix (file, line, field)."""


class StageFailed(Exception):
    """A stage ran but failed: it raised, or its acceptance rule rejected its metrics.

    Its manifest says ``status: failed`` with the reasons; the next run redoes it."""
