"""The one exception users see: a single line that names the problem and the fix."""

from __future__ import annotations


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
