"""General text for forgetting: the built-in source works offline and is stable; user files are read
as documented, and every bad file ends in one TunelabError line that names it."""

from __future__ import annotations

import json
import os

import pytest

from tunelab.errors import TunelabError
from tunelab.tasks.causal_lm.general_text import BUILTIN, MODULES, fingerprint, passages

LONG = ("This paragraph is long enough to stand as a passage on its own, without merging. " * 3).strip()


def test_builtin_gives_limit_passages_of_min_chars_deterministically():
    first = passages(BUILTIN, limit=32, min_chars=200)
    assert len(first) == 32
    assert all(len(p) >= 200 for p in first)
    assert passages(BUILTIN, limit=32, min_chars=200) == first
    assert len(set(first)) == 32


def test_builtin_is_prose_from_many_modules_not_doctests():
    every = passages(BUILTIN, limit=1000)
    assert len(every) >= 100
    assert not any(p.lstrip().startswith(">>>") for p in every)
    assert passages(BUILTIN, limit=10) == every[:10]  # a smaller limit is a prefix, not another sample


def test_min_chars_merges_paragraphs():
    short = passages(BUILTIN, limit=1000, min_chars=1)
    long = passages(BUILTIN, limit=1000, min_chars=600)
    assert len(long) < len(short)
    assert all(len(p) >= 600 for p in long)


def test_txt_paragraphs_merge_until_min_chars(tmp_path):
    path = tmp_path / "general.txt"
    path.write_text(f"Short one.\n\nShort two.\n\n{LONG}\n\n\n{LONG}\n\nTail.\n", encoding="utf-8")
    found = passages(str(path), min_chars=100)
    assert found == [f"Short one.\n\nShort two.\n\n{LONG}", f"{LONG}\n\nTail."]
    assert passages(str(path), limit=1, min_chars=100) == found[:1]


def test_jsonl_and_json_read_the_text_field(tmp_path):
    rows = [{"text": LONG, "id": 1}, {"text": "short"}, {"text": LONG}]
    jsonl = tmp_path / "general.jsonl"
    jsonl.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    array = tmp_path / "general.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    expected = [LONG, f"short\n\n{LONG}"]
    assert passages(str(jsonl), min_chars=100) == expected
    assert passages(str(array), min_chars=100) == expected


def test_a_file_shorter_than_min_chars_is_one_passage(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("Only a sentence.", encoding="utf-8")
    assert passages(str(path)) == ["Only a sentence."]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (None, b"", "does not exist"),
        ("general.csv", b"text\nhello\n", "unsupported suffix '.csv'"),
        ("empty.txt", b"\n\n  \n", "yields no passage"),
        ("empty.jsonl", b"", "yields no passage"),
        ("latin1.txt", "caf\u00e9 au lait".encode("latin-1"), "is not UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{oops\n', "invalid JSON at line 2"),
        ("notext.jsonl", b'{"body": "ok"}\n', "row 1 has no string 'text' field"),
        ("object.json", b'{"text": "ok"}', "is not a JSON list"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / (name or "missing.txt")
    if name:
        path.write_bytes(content)
    with pytest.raises(TunelabError, match=message) as caught:
        passages(str(path))
    assert "\n" not in str(caught.value) and caught.value.hint
    assert str(path) in str(caught.value)


def test_fingerprint_tracks_python_version_modules_and_file_contents(tmp_path):
    builtin = fingerprint(BUILTIN)
    assert builtin == fingerprint(BUILTIN)
    assert builtin.startswith(f"{BUILTIN}:py") and len(MODULES) >= 40
    path = tmp_path / "general.txt"
    path.write_text(LONG, encoding="utf-8")
    before = fingerprint(str(path))
    os.utime(path, (0, 0))
    assert fingerprint(str(path)) == before  # contents, not timestamps
    path.write_text(LONG + "More.", encoding="utf-8")
    assert fingerprint(str(path)) != before
    with pytest.raises(TunelabError, match="does not exist"):
        fingerprint(str(tmp_path / "missing.txt"))
