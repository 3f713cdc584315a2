"""How big the HTML report is on many classes, and what makes it so.

    python bench/many_classes.py --workdir /tmp/bench-mc      # once: a 50-class comparison's store
    python bench/report_size.py --workdir /tmp/bench-mc/default

Reads a finished comparison from its store (by default the latest experiment), renders its
``comparison.html`` as ``tunelab report --html`` does, and splits the page's bytes by section: plotly's
library (inlined, so that the page opens offline), the charts, the per-class tables, the confusion
matrices (the most-confused pairs and each method's full matrix), and the rest. Rendering takes no
training, so any store will do; the 50-class TREC store of ``bench/many_classes.py`` is the most classes
a data set in ``../shared/data`` has.
"""

from __future__ import annotations

import argparse
import datetime
import re
import time
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

from tunelab.report import html
from tunelab.report.summary import from_store
from tunelab.store import Store

# Each part of the page: a pattern for its markup (found once or more; its bytes summed)
PARTS = {
    "per-class tables (the table and every class behind its control)":
        r'<table id="per-class".*?</table>|<details id="per-class-all">.*?</details>',
    "charts (Pareto, learning curves, sweeps: their data)": r'<div id="chart-(?!confusion).*?</script>',
    "confusion matrices: the most-confused pairs": r'<table class="confused-pairs">.*?</table>',
    "confusion matrices: each method's full heatmap": r'<div id="chart-confusion-.*?</script>',
}


def split(page: str) -> dict[str, int]:
    """The page's bytes by part."""
    size = {"whole page": len(page.encode())}
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    library = max(scripts, key=len, default="")
    size["plotly.js (inlined)"] = len(library.encode())
    rest = page.replace(library, "")
    for name, pattern in PARTS.items():
        size[name] = sum(len(found.encode()) for found in re.findall(pattern, rest, flags=re.S))
    size["everything else"] = 2 * size["whole page"] - sum(size.values())
    return size


def report(workdir: Path, experiment: int | None) -> str:
    store = Store(workdir)
    chosen = experiment if experiment is not None else store.latest_experiment()
    if chosen is None:
        raise SystemExit(f"{workdir} holds no experiment")
    started = time.perf_counter()
    summary = from_store(store, chosen)
    page = html.render(summary)
    seconds = time.perf_counter() - started
    size = split(page)
    classes = max((len(c.labels) for c in summary.confusion.values()), default=0)
    lines = [
        "# The HTML report's size on many classes", "",
        f"Rendered from the store in `{workdir}`, experiment {chosen}: {summary.title}; {len(summary.rows)} methods "
        f"({', '.join(row.label or row.method for row in summary.rows)}), {classes} classes. Reading the store and "
        f"rendering took {seconds:.1f} s.", "",
        "| part | KB | share |", "|---|---|---|",
    ]
    whole = size["whole page"]
    lines += [f"| {name} | {value / 1000:,.1f} | {100 * value / whole:.1f} % |" for name, value in size.items()]
    content = whole - size["plotly.js (inlined)"]
    lines += ["", f"Without plotly's library, which every report inlines whatever its data, the page is "
              f"{content / 1000:,.0f} KB: {content / 1000 / max(len(summary.rows), 1):,.0f} KB per method."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-mc/default"))
    parser.add_argument("--experiment", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "report-size.md")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    args.out.write_text(stamped(report(args.workdir, args.experiment), started))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
