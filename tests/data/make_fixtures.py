"""Cut the test fixtures in tests/data/ from the full data sets, once, and say how in tests/data/README.md.

    python tests/data/make_fixtures.py --from ../shared/data

The full data sets (see their README) sit beside the repository on the development machines and in CI,
but not in a fresh clone; the tests read only these samples. Every cut is deterministic and keeps the
source's bytes: the rows are the source's own lines (its header, quoting and line endings), in the
source's order, so that a test reading "the first 60 rows" of a file reads the rows it read from the
full file. Only alpaca's JSON array is written again, with json.dumps as the source was written (the
script checks that this gives the source's bytes back). The sizes are what the tests need (see NEEDS);
run the script again after changing a cut, and commit the files with the README it writes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

SST2 = ("GLUE SST-2 (Socher et al. 2013): train+validation are the GLUE train set re-split, test is the "
        "official GLUE dev set (labelled)", "research use")
ROTTEN = ("Pang & Lee 2005 sentence polarity v1.0, split with a fixed seed in the sizes of the Hugging Face "
          "rotten_tomatoes set", "research use")
AG_NEWS = ("AG News (Zhang et al. 2015): train is a 10k sample of the official train set, test the official "
           "test set", "non-commercial research use")
TREC = ("TREC question classification (Li & Roth 2002)", "research use")
EMOTION = ("Saravia et al. 2018 (dair-ai/emotion)", "education and research use")
SMS = ("UCI SMS Spam Collection v1", "CC BY 4.0")
UCI = ("UCI Sentiment Labelled Sentences (Kotzias et al. 2015)", "CC BY 4.0")
ALPACA = ("Stanford Alpaca, 5,000 random rows", "CC BY-NC 4.0")


@dataclass(frozen=True)
class Cut:
    source: str  # under --from
    target: str  # under tests/data
    how: str  # for the README
    rows: Callable[[list[bytes]], list[bytes]]  # the source's rows (lines, header apart) -> the fixture's
    provenance: tuple[str, str]  # source, licence
    needs: str  # which tests need what, so that the next person knows how small it may get
    header: bool = False  # a first line that is no row (TSV, CSV)


def first(n: int) -> Callable[[list[bytes]], list[bytes]]:
    def cut(rows: list[bytes]) -> list[bytes]:
        if len(rows) < n:
            raise SystemExit(f"the source has {len(rows)} rows, fewer than the {n} to cut")
        return rows[:n]
    return cut


def every(rows: list[bytes]) -> list[bytes]:
    return rows


def sms_spam(rows: list[bytes]) -> list[bytes]:
    """The first 870 ham and the first 130 spam rows, in the file's order: 13 % spam, so that the 10 %
    validation and test splits tunelab makes from this unsplit file can be stratified exactly."""
    counts = {"ham": 870, "spam": 130}
    kept = []
    for row in rows:
        (label, _), = csv.reader([row.decode("utf-8")])
        if counts[label]:
            counts[label] -= 1
            kept.append(row)
    if any(counts.values()):
        raise SystemExit(f"sms_spam: too few rows of {counts}")
    return kept


def _short_instruction_only(row: dict) -> bool:
    return not row["input"] and len(row["instruction"] + row["output"]) < 100


CUTS = [
    Cut("sst2/train.tsv", "sst2/train.tsv", "first 1500 rows", first(1500), SST2, header=True,
        needs="test_data*.py build their own files from its first sentences (1,500 for a train split too small "
              "for its sample); samples of 48 and 100 train rows; test_pinned.py's losses are pinned on this cut"),
    Cut("sst2/validation.tsv", "sst2/validation.tsv", "first 300 rows", first(300), SST2, header=True,
        needs="test_tuning.py samples 100 validation rows; test_pinned.py's losses are pinned on this cut"),
    Cut("sst2/test.tsv", "sst2/test.tsv", "first 300 rows", first(300), SST2, header=True,
        needs="samples of 24 and 30 test rows; test_data_inputs.py asks for more than there are"),
    Cut("rotten_tomatoes/train.jsonl", "rotten_tomatoes/train.jsonl", "first 400 rows", first(400), ROTTEN,
        needs="test_split_names.py builds files from rows 0-149; samples of 48 and 60 (stratified: 30 positive)"),
    Cut("rotten_tomatoes/validation.jsonl", "rotten_tomatoes/validation.jsonl", "first 200 rows", first(200), ROTTEN,
        needs="samples of 20 and 24; test_split_names.py reads it whole"),
    Cut("rotten_tomatoes/test.jsonl", "rotten_tomatoes/test.jsonl", "first 200 rows", first(200), ROTTEN,
        needs="samples of 20 and 24"),
    Cut("ag_news/train.jsonl", "ag_news/train.jsonl", "first 1000 rows", first(1000), AG_NEWS,
        needs="test_pairs.py pairs articles from rows 0-963; a folder without a validation split (4 classes)"),
    Cut("ag_news/test.jsonl", "ag_news/test.jsonl", "first 200 rows", first(200), AG_NEWS,
        needs="a sample of 20"),
    Cut("trec/train.jsonl", "trec/train.jsonl", "first 1000 rows", first(1000), TREC,
        needs="samples of 60 train and 30 validation rows, the validation split made from train (10 %, 100 rows): "
              "a stratified sample needs 2 rows of each class there, and ABBR is 1.8 % of the rows (400 rows: 1)"),
    Cut("trec/test.jsonl", "trec/test.jsonl", "all 500 rows (the whole official test set)", every, TREC,
        needs="samples of exactly 500, and of 501 and 5000 refused against its 500 rows"),
    Cut("emotion/train.jsonl", "emotion/train.jsonl", "first 200 rows", first(200), EMOTION,
        needs="test_data_inputs.py rewrites the first 60 rows in SetFit's layout"),
    Cut("emotion/validation.jsonl", "emotion/validation.jsonl", "first 200 rows", first(200), EMOTION,
        needs="test_data_inputs.py rewrites the first 60 rows in SetFit's layout"),
    Cut("sms_spam/sms_spam.csv", "sms_spam/sms_spam.csv",
        "the first 870 ham and the first 130 spam rows, in the file's order (13 % spam; the full file has 13.4 %)",
        sms_spam, SMS, header=True,
        needs="one file, no split: tunelab makes 10 % validation and test splits (100 rows each), stratified"),
    *(Cut(f"uci_sentences/{name}.jsonl", f"uci_sentences/{name}.jsonl", "first 200 rows", first(200), UCI,
          needs="a folder of files none of which is a split: refused ('has no train file')")
      for name in ("amazon", "imdb", "yelp")),
]
ALPACA_CUT = ("alpaca/alpaca_5000.json", "alpaca/alpaca.json",
              "the first 300 rows, then every later row up to the source's 120th row with no input and "
              "instruction + output under 100 characters (so it holds those 120), in the source's order; "
              "one JSON array as the source",
              "test_instructions.py reads the first 20 rows, test_causal.py the first 60 and the first 120 short "
              "instruction-only rows; samples of 16/8/8 from the 10 % splits made from train")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _lines(data: bytes) -> list[bytes]:
    """Lines at \\n only (a text may hold U+2028, which str.splitlines would split at), each with its
    own ending (\\r\\n in the SMS file)."""
    lines = data.split(b"\n")
    if lines[-1]:
        raise SystemExit("the source does not end with a newline")
    return [line + b"\n" for line in lines[:-1]]


def cut_lines(cut: Cut, source: Path, target: Path) -> tuple[int, int, str]:
    data = source.read_bytes()
    lines = _lines(data)
    header, rows = (lines[:1], lines[1:]) if cut.header else ([], lines)
    kept = cut.rows(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"".join(header + kept))
    return len(rows), len(kept), _digest(data)


def cut_alpaca(source: Path, target: Path) -> tuple[int, int, str]:
    data = source.read_bytes()
    rows = json.loads(data)
    if json.dumps(rows).encode() != data:
        raise SystemExit(f"{source}: json.dumps does not give its bytes back; write the cut as the source is written")
    short = [i for i, row in enumerate(rows) if _short_instruction_only(row)]
    last = short[119]
    kept = [row for i, row in enumerate(rows) if i < 300 or (i <= last and _short_instruction_only(row))]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(kept))
    return len(rows), len(kept), _digest(data)


def readme(entries: list[tuple[str, str, int, int, int, str, str, tuple[str, str], str]]) -> str:
    total = sum(entry[4] for entry in entries)
    lines = [
        "# Test fixtures: small samples of real data sets",
        "",
        "The tests read these files, never the full data sets: a fresh clone runs its tests with nothing",
        "beside it. They were cut from the full data sets (`../shared/data` on the development machines and in",
        "CI, where the benchmarks in `bench/` read them whole) by `make_fixtures.py`, which wrote this README:",
        "",
        "    python tests/data/make_fixtures.py --from ../shared/data",
        "",
        "Each file holds the source's own rows (its header, quoting and line endings), in the source's order,",
        "so a test that reads a file's first rows reads what it read from the full file. Nothing is synthetic",
        "and nothing is random: running the script again on the same sources gives the same bytes.",
        "`TUNELAB_TEST_DATA` points the tests at another copy of this folder (expected values in the tests are",
        "these files', e.g. the pinned losses and the row counts of the splits tunelab makes).",
        "",
        f"{len(entries)} files, {total:,} bytes ({total / 1024:.0f} KiB) in all.",
        "",
        "| file | rows | bytes | how cut (source rows; sha256 of the source, first 16 hex) | source | licence |",
        "|---|---|---|---|---|---|",
    ]
    for target, source, rows_in, rows_out, size, how, digest, (origin, licence), _ in entries:
        lines.append(f"| `{target}` | {rows_out:,} | {size:,} | {how}, of `{source}` ({rows_in:,} rows; "
                     f"`{digest}`) | {origin} | {licence} |")
    lines += ["", "What the tests need of each file (the floor on its size):", ""]
    lines += [f"- `{target}`: {needs}" for target, *_, needs in entries]
    lines += ["", "Beside them, `unknown-architecture/` is a hand-written model config (`tests/unit/estimation/test_memory.py`).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True,
                        help="the folder of full data sets (../shared/data)")
    parser.add_argument("--to", type=Path, default=HERE, help="where the fixtures go (this folder)")
    args = parser.parse_args()
    entries = []
    for cut in CUTS:
        rows_in, rows_out, digest = cut_lines(cut, args.source / cut.source, args.to / cut.target)
        entries.append((cut.target, cut.source, rows_in, rows_out, (args.to / cut.target).stat().st_size, cut.how,
                        digest, cut.provenance, cut.needs))
    source, target, how, needs = ALPACA_CUT
    rows_in, rows_out, digest = cut_alpaca(args.source / source, args.to / target)
    entries.append((target, source, rows_in, rows_out, (args.to / target).stat().st_size, how, digest, ALPACA, needs))
    (args.to / "README.md").write_text(readme(entries))
    for target, _, _, rows_out, size, *_ in entries:
        print(f"{target}: {rows_out} rows, {size:,} bytes")


if __name__ == "__main__":
    main()
