"""What a content fingerprint costs: the built-in models' folders fingerprinted with an empty digest
cache (read from disk, and again with the files in the OS page cache) and with a full one.

    python bench/fingerprint.py                   # MiniLM (87 MB) and SmolLM2 (538 MB), 3 repeats
    python bench/fingerprint.py --models builtin:minilm,path/to/model --repeats 5

Each measurement uses a fresh digest cache (TUNELAB_MODEL_CACHE in a temporary folder):

- cold: the folder's files dropped from the OS page cache first (posix_fadvise DONTNEED, which
  touches only these files' cached pages), then fingerprinted: every byte read from disk;
- first: fingerprinted again with an empty digest cache, the bytes now in memory: hashing alone;
- cached: fingerprinted once more, the digests found in the cache: a stat per file and a JSON read.

It reports the median over --repeats, the hashing speed, and what a first fingerprint of a 500 MB and
a 15 GB folder would take at the measured speeds (size / speed: an estimate, not a measurement).
Writes bench/results/fingerprint.md with its own provenance (date, commit, machine, command).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from provenance import commit, machine  # bench/provenance.py

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


def _drop_from_page_cache(files: list[Path]) -> None:
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _timed(path: str, config: object) -> float:
    from tunelab.models import fingerprint

    started = time.perf_counter()
    fingerprint(path, config)
    return time.perf_counter() - started


def measure(ref: str) -> dict[str, float]:
    """One cold, first and cached fingerprint of ``ref``'s folder, each digest cache fresh."""
    from tunelab import digests
    from tunelab.models import content_files, load_config, model_folder

    path = model_folder(ref)
    config = load_config(path)
    files = content_files(Path(path))
    before = os.environ.get("TUNELAB_MODEL_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TUNELAB_MODEL_CACHE"] = cache  # digests only: the model's folder was found above
        try:
            _drop_from_page_cache(files)
            cold = _timed(path, config)
            (Path(cache) / digests.CACHE_FILE).unlink()
            first = _timed(path, config)
            cached = _timed(path, config)
        finally:
            os.environ.pop("TUNELAB_MODEL_CACHE")
            if before is not None:
                os.environ["TUNELAB_MODEL_CACHE"] = before
    return {"bytes": sum(f.stat().st_size for f in files), "files": len(files), "cold": cold, "first": first,
            "cached": cached}


def _estimate(seconds_per_byte: float, size: float) -> str:
    return f"{seconds_per_byte * size:.1f} s"


def report(results: dict[str, list[dict[str, float]]], repeats: int, machine: str) -> list[str]:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    lines = ["# Content fingerprints: what they cost", "",
             f"Date: {when}. Commit: `{commit()}`. Machine: {machine}. Command: `{command}`.", "",
             f"Median of {repeats} repeats, each with a fresh digest cache. *cold*: the files dropped from the "
             "page cache, read from disk and hashed; *first*: an empty digest cache, the files in memory "
             "(hashing alone); *cached*: the digests found in the cache (a stat per file).", "",
             "| model | files | size (MB) | cold (s) | first (s) | cached (ms) | disk + hash (MB/s) | hash (MB/s) |",
             "|---|---|---|---|---|---|---|---|"]
    speeds = {"cold": [], "first": []}
    for ref, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs) for k in ("cold", "first", "cached")}
        size = runs[0]["bytes"]
        for kind in speeds:
            speeds[kind].append(median[kind] / size)
        lines.append(f"| {ref} | {runs[0]['files']:.0f} | {size / 1e6:.0f} | {median['cold']:.2f} | "
                     f"{median['first']:.2f} | {1000 * median['cached']:.1f} | {size / median['cold'] / 1e6:.0f} | "
                     f"{size / median['first'] / 1e6:.0f} |")
    slowest = {kind: max(values) for kind, values in speeds.items()}
    lines += ["", "Estimated first fingerprint of larger folders, at the slowest speed measured above "
              "(size × seconds per byte; not measured). A 15 GB folder seldom fits the page cache beside "
              "anything else, so its *from disk* figure is the one to expect; a cached one costs a stat per file "
              "either way.", "",
              "| folder | from disk | files already in memory |", "|---|---|---|",
              f"| 500 MB | {_estimate(slowest['cold'], 0.5 * GB)} | {_estimate(slowest['first'], 0.5 * GB)} |",
              f"| 15 GB | {_estimate(slowest['cold'], 15 * GB)} | {_estimate(slowest['first'], 15 * GB)} |"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="builtin:minilm,builtin:smollm2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fingerprint.md"))
    args = parser.parse_args()
    where = machine()
    results = {ref: [measure(ref) for _ in range(args.repeats)] for ref in args.models.split(",")}
    lines = report(results, args.repeats, where)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
