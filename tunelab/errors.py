"""The one exception users see: a single line that names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TunelabError(Exception):
    """A user-facing failure: bad config, data, model path or flag.

    The CLI prints ``str(error)`` on one line and exits with code 2; a traceback means a bug.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message ('' when it has none): libraries' errors run long."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "did you mean ", suffix: str = "? ") -> str:
    """``"did you mean 'epochs'? "`` for the closest candidate, or ``""``: every misspelt name a user
    can type (keys, methods, options, study spaces) gets the same hint."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"{prefix}{close[0]!r}{suffix}" if close else ""


def root_cause_line(err: BaseException) -> str:
    """The first line of the root cause: libraries (datasets) wrap a parser's error in a generic one."""
    while err.__cause__ is not None:
        err = err.__cause__
    return first_line(err) or type(err).__name__
