"""``seeds: auto``: more seeds only where they can change the verdict.

Training noise (the seed's draw of initialisation, dropout and order) moves a small comparison's test
accuracy by a point or more, as much as the differences the table is read for. Seeds for every
method cost a multiple of the whole comparison; the table's verdict among its leaders is what they
would protect. So a comparison with ``seeds: auto`` trains every method on one seed first; then the
methods that learned and that the test set cannot tell from the best (their paired interval includes
zero, the best among them) train more seeds, up to the maximum (``ExperimentSpec.seeds_auto``). Their
rows are then means over seeds (± a t-interval) and their paired intervals compare per-example means
over seeds: the verdict among the leaders covers training noise as well as the test sample. The
others keep one seed: more would not change what the table says of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.report import MethodRow, Summary
from tunelab.spec import ExperimentSpec
from tunelab.spec.run import RunSpec


def leaders(summary: Summary) -> list[MethodRow]:
    """The rows that learned and that the test set cannot tell from the best (the best among them);
    never the untuned base model's, which draws nothing a seed could change."""
    return [row for row in summary.rows if row.done and row.learned is not False and row.paired is not None
            and not row.base and (row.best or not row.paired.excludes_zero)]


@dataclass(frozen=True)
class Added:
    label: str  # the row's
    first: str  # the key of its first seed's run
    runs: list[RunSpec]  # its further seeds' runs


def more_seeds(spec: ExperimentSpec, runs: list[RunSpec], summary: Summary) -> list[Added]:
    """Per leading row, the runs of its further seeds, each its first seed's run with another seed;
    none where the comparison had no best to lead (or ``seeds: auto`` is off)."""
    if not spec.seeds_auto:
        return []
    by_key = {run.key: run for run in runs}
    added = []
    for row in leaders(summary):
        mine = [by_key[key] for key in row.keys if key in by_key]
        seeds = {run.seed for run in mine}
        extra = [mine[0].model_copy(update={"seed": seed}) for seed in range(spec.seeds_auto) if seed not in seeds]
        if extra:
            added.append(Added(label=row.label, first=mine[0].key, runs=extra))
    return added


def note(added: list[Added], seconds: float, most: int) -> str:
    """What ``seeds: auto`` did and cost, for the notes under the table."""
    if not added:
        return f"seeds: auto (up to {most}): no method was left that the test set could not tell from the best"
    names = ", ".join(sorted(a.label for a in added))
    runs = sum(len(a.runs) for a in added)
    return (f"seeds: auto (up to {most}): {names} trained {runs} more run(s) (the test set could not tell them "
            f"from the best on one seed), {seconds:.0f} s of training")
