"""Is a text file UTF-8? pandas, pyarrow and the YAML reader take UTF-8 only and fail deep inside
(or read garbage) on a file saved as Latin-1 or UTF-16. Experiment files and data files are both
checked here, so that both say the same things about the same bytes: which encoding it looks like,
where the first byte that is not UTF-8 sits, and how to convert the file."""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20
_WIDE_MARKS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
               (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


@dataclass(frozen=True)
class NotUtf8:
    """What gives a file away: a wide encoding (``reason`` says how), or one byte that is not UTF-8."""

    encoding: str  # its likely iconv name, for the hint
    reason: str | None = None  # for a wide encoding (UTF-16, UTF-32)
    byte: int = 0  # else: the first byte that is not UTF-8,
    position: int = 0  # its offset in the file,
    line: int = 1  # and where it sits, counted from 1
    column: int = 1

    def hint(self, path: str | Path) -> str:
        return f"convert it to UTF-8, e.g. iconv -f {self.encoding} -t utf-8 {path} > utf8-{Path(path).name}"


def find_non_utf8(path: str | Path) -> NotUtf8 | None:
    """None for a UTF-8 file; read in blocks, so any size will do."""
    with open(path, "rb") as f:
        return find_non_utf8_in(iter(lambda: f.read(_BLOCK), b""))


def find_non_utf8_in(blocks: Iterable[bytes]) -> NotUtf8 | None:
    """None for UTF-8 text (a UTF-8 byte-order mark is fine). A byte-order mark or a NUL byte in the
    first block (no text holds one) means UTF-16 or UTF-32."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, line_start = 0, 1, 0  # where the block starts; the line, and where it starts, there
    for block in blocks:
        if offset == 0:
            wide = _wide(block)
            if wide:
                return wide
        try:
            decoder.decode(block)
        except UnicodeDecodeError as err:  # err.object may begin with bytes carried over from the last block
            return _bad_byte(err, offset - (len(err.object) - len(block)), line, line_start)
        if b"\n" in block:
            line += block.count(b"\n")
            line_start = offset + block.rfind(b"\n") + 1
        offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:  # the text ends in the middle of a character
        return _bad_byte(err, offset - len(err.object), line, line_start)
    return None


def _wide(block: bytes) -> NotUtf8 | None:
    for mark, name in _WIDE_MARKS:
        if block.startswith(mark):
            return NotUtf8(name.lower(), f"it is {name}: it starts with a {name} byte-order mark")
    if b"\x00" in block:
        order = "utf-16be" if block[:1] == b"\x00" else "utf-16le"  # ASCII's zero byte comes first or last
        return NotUtf8(order, "it holds NUL bytes: UTF-16 without a byte-order mark?")
    return None


def _bad_byte(err: UnicodeDecodeError, start: int, line: int, line_start: int) -> NotUtf8:
    """``err.object`` begins at byte ``start`` of the file, on line ``line``, which began at byte
    ``line_start`` (bytes carried over from the last block hold no newline)."""
    before = err.object[:err.start]
    if b"\n" in before:
        line += before.count(b"\n")
        line_start = start + before.rfind(b"\n") + 1
    position = start + err.start
    return NotUtf8("latin1", byte=err.object[err.start], position=position, line=line,
                   column=position - line_start + 1)
