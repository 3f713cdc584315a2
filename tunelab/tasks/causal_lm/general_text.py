"""General text for measuring forgetting: a causal LM's loss on it before and after fine-tuning.

The built-in source, ``builtin:general-text``, is the docstrings of a fixed list of standard-library
modules, classes and functions - English prose that ships with Python itself. It is a fair proxy because:

* it is fluent English of a kind an instruction-tuned LM's pretraining mix covers (web text, docs, code);
* it is the same on every machine for a given Python version, and needs no download, so runs compare;
* it shares nothing with a user's task data, so a rise in loss on it measures what tuning cost the
  model's general language modelling, not transfer from the task.

It is technical prose, so it is a proxy, not a general benchmark: a model tuned on code or documentation
may even improve on it. Users who care about another register point ``source`` at their own file
(.txt, .jsonl or .json) instead.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from tunelab.digests import file_digests
from tunelab.errors import TunelabError

BUILTIN = "builtin:general-text"
SUFFIXES = (".txt", ".jsonl", ".json")

# Chosen for long prose docstrings on Python 3.10-3.13; one that is missing or too short on some
# version is skipped (see _builtin_documents), so the list never needs a version switch.
MODULES = (
    "argparse",
    "argparse.ArgumentParser",
    "collections",
    "configparser",
    "copy",
    "csv",
    "dataclasses.dataclass",
    "dataclasses.field",
    "difflib",
    "difflib.Differ",
    "difflib.SequenceMatcher",
    "doctest",
    "doctest.testmod",
    "email.message.Message",
    "fractions.Fraction",
    "functools.lru_cache",
    "hashlib",
    "heapq",
    "inspect",
    "io",
    "itertools",
    "json",
    "json.dumps",
    "logging.Logger",
    "logging.basicConfig",
    "os.walk",
    "pickle.Pickler",
    "pprint",
    "random",
    "re",
    "sched",
    "shutil.copytree",
    "statistics",
    "string",
    "subprocess",
    "subprocess.Popen",
    "tempfile.mkstemp",
    "textwrap.TextWrapper",
    "timeit",
    "typing.Protocol",
    "typing.TypeVar",
    "unittest",
    "unittest.TestCase",
    "uuid",
    "zipfile.ZipFile",
)
_MIN_DOC_CHARS = 400  # shorter docstrings are one-line summaries, not prose


def passages(source: str, limit: int = 32, min_chars: int = 200) -> list[str]:
    """Up to ``limit`` passages of general text, the same list every time for the same source.

    ``source`` is BUILTIN or a path to a .txt file (passages are paragraphs separated by blank lines),
    a .jsonl file (a ``text`` field per row) or a .json file (a list of objects with a ``text`` field).
    Paragraphs (rows) shorter than ``min_chars`` are merged with the next ones, so that each passage
    gives the loss enough tokens to be stable; a short remainder joins the passage before it. For
    BUILTIN each docstring is merged on its own and the passages are interleaved across docstrings, so
    that a small ``limit`` still samples many modules rather than the first one's paragraphs; a
    docstring with less than ``min_chars`` of prose in all is left out, so every BUILTIN passage has
    at least ``min_chars`` characters.
    """
    if source == BUILTIN:
        documents = [_merge(doc, min_chars) for doc in _builtin_documents()]
        found = [p for group in zip_longest(*documents) for p in group if p is not None and len(p) >= min_chars]
    else:
        found = _merge(_file_paragraphs(Path(source)), min_chars)
    if not found:
        raise TunelabError(f"general text source {source!r} yields no passage", _empty_hint(source))
    return found[:limit]


def fingerprint(source: str) -> str:
    """A key that changes whenever the passages may have changed, so that a cached baseline loss
    measured on other text is never compared with a new one.

    For BUILTIN: the Python version, the module list and -OO (docstrings change between versions). For a
    file: a sha256 of its bytes, which unlike mtime survives copies and catches same-second edits.
    """
    if source == BUILTIN:
        version = ".".join(str(part) for part in sys.version_info[:2])
        digest = hashlib.sha256("\n".join(MODULES).encode()).hexdigest()[:16]
        stripped = ":OO" if sys.flags.optimize >= 2 else ""  # -OO strips pure-Python docstrings
        return f"{BUILTIN}:py{version}:{digest}{stripped}"
    path = _existing(Path(source))
    return f"sha256:{file_digests([path])[0]}"  # read in blocks, cached like the model's files


def _builtin_documents() -> Iterator[list[str]]:
    """The prose paragraphs of each docstring in MODULES, in order. Doctest blocks are dropped: they are
    Python, not English. A docstring missing on this Python (or stripped by -OO), or with too little
    prose left, is skipped, which is deterministic for a given Python version."""
    for name in MODULES:
        prose = [p for p in _paragraphs(_docstring(name)) if not p.lstrip().startswith(">>>")]
        if sum(len(p) for p in prose) >= _MIN_DOC_CHARS:
            yield prose


def _docstring(name: str) -> str:
    module_name, _, attributes = name.partition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for attribute in attributes.split(".") if attributes else []:
            obj = _attribute_or_submodule(obj, attribute)
    except (ImportError, AttributeError):
        return ""
    doc = obj.__doc__  # not inspect.getdoc: an inherited docstring would repeat another entry's text
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _attribute_or_submodule(obj: Any, attribute: str) -> Any:
    if not hasattr(obj, attribute) and inspect.ismodule(obj):
        importlib.import_module(f"{obj.__name__}.{attribute}")  # e.g. email.message is not imported by email
    return getattr(obj, attribute)


def _paragraphs(text: str) -> list[str]:
    blocks = ("\n".join(line.rstrip() for line in text.splitlines())).split("\n\n")
    return [block.strip("\n") for block in blocks if block.strip()]


def _merge(paragraphs: list[str], min_chars: int) -> list[str]:
    merged: list[str] = []
    pending = ""
    for paragraph in paragraphs:
        pending = f"{pending}\n\n{paragraph}" if pending else paragraph
        if len(pending) >= min_chars:
            merged.append(pending)
            pending = ""
    if pending and merged:
        merged[-1] = f"{merged[-1]}\n\n{pending}"
    elif pending:
        merged.append(pending)  # a file shorter than min_chars is still text; better some loss than none
    return merged


def _file_paragraphs(path: Path) -> list[str]:
    path = _existing(path)
    if path.suffix.lower() not in SUFFIXES:
        raise TunelabError(
            f"general text file {str(path)!r} has unsupported suffix {path.suffix!r}",
            f"use one of {', '.join(SUFFIXES)} or {BUILTIN!r}",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TunelabError(
            f"general text file {str(path)!r} is not UTF-8 (byte {err.start})", "re-save it as UTF-8"
        ) from None
    if path.suffix.lower() == ".txt":
        return _paragraphs(text.replace("\r\n", "\n"))
    return [row.strip() for row in _rows(path, text) if row.strip()]


def _rows(path: Path, text: str) -> list[str]:
    if path.suffix.lower() == ".jsonl":
        lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        return [_text_field(path, _json(path, line, number), number) for number, line in lines]
    elements = _json(path, text, None)
    if not isinstance(elements, list):
        raise TunelabError(f"general text file {str(path)!r} is not a JSON list", 'write [{"text": "..."}, ...]')
    return [_text_field(path, element, number) for number, element in enumerate(elements, 1)]


def _json(path: Path, text: str, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {line}" if line is not None else f"line {err.lineno}"
        raise TunelabError(f"general text file {str(path)!r} has invalid JSON at {where}", err.msg) from None


def _text_field(path: Path, row: Any, number: int) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise TunelabError(
            f"general text file {str(path)!r}: row {number} has no string 'text' field", 'write {"text": "..."}'
        )
    return str(row["text"])


def _existing(path: Path) -> Path:
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise TunelabError(f"general text file {str(path)!r} {problem}", f"check the path, or use {BUILTIN!r}")
    return path


def _empty_hint(source: str) -> str:
    if source == BUILTIN:
        return "docstrings are stripped (python -OO or PYTHONOPTIMIZE=2): run without it, or pass a file"
    return "add paragraphs separated by blank lines (.txt) or rows with a 'text' field (.jsonl/.json)"
