"""The error a user can fix: a missing API-key variable, an unknown template, an unreadable input.

Its message is one line that names the file, line or field and says what to do; the command
line prints it without a traceback (``error: ...``, exit code 2).
"""

from __future__ import annotations


class JudgeSetupError(ValueError):
    """A judge run cannot start or read its input; the message says what to fix."""
