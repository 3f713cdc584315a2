"""What a comparison's final runs say beyond their scores, judged against validation noise after
they have trained, and kept in the store (``ExperimentInfo.curves``, ``LrChoice.learned``) so that
every report, ``tunelab report`` included, says it.

**Did it learn?** A method whose final validation score (the mean over its seeds) cannot be told
from what learning nothing scores (``ExperimentInfo.baselines``: classification's majority class) by
more than ``Task.margin`` did not learn, and the table says so instead of a number that looks like a
result. The score is its best evaluation's, chosen on that same split, so it leans high: a method
called "did not learn" did not get there even with that help. Without a baseline (causal-lm) nothing
is said.

**Was its budget enough?** Each final run's validation curve, the ``eval_<metric>`` points the store
keeps (``judge_curve``):

- *not converged*: its last evaluation beat every evaluation before the last third of its
  evaluations by more than noise, and it had not gone ``early_stopping_patience`` evaluations without
  a new best (the protocol's own rule for a plateau). The window is a third of the evaluations rather
  than a fixed count, so that it spans the same share of the budget whether a run evaluated 4 times or
  400; comparing with the best *before* it, not one point, means a curve wobbling on a plateau (its
  earlier best is the top of the wobble) is not called rising.
- *overfit after step N*: its last evaluation fell below its best one (step N) by more than noise.
  A run keeps its best evaluation's weights, so the table's numbers are step N's; the flag says that
  training on made it worse (and, for a later run, that a shorter budget would have cost nothing).

**Noise** for a difference between two evaluations of one curve is ``Task.margin`` at the validation
split's size where the metric has a known sampling error (two accuracies' 95 % margin: what another
sample of that many examples could reverse). A loss has none (its margin is 0), so its curve's own
evaluation-to-evaluation scatter stands in (``scatter``): the noise of one evaluation estimated from
the curve's second differences, robustly, and turned into the same 95 % margin of a difference. A
steep start counts as scatter where it is much of the curve, which makes the verdict cautious on
short curves; with fewer than five evaluations a loss curve gets no verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from tunelab import tasks
from tunelab.results import Curve, ExperimentInfo, LrChoice, RunStatus
from tunelab.spec import ExperimentSpec
from tunelab.store import Store

WINDOW = 1 / 3  # of a curve's evaluations: the end over which "still improving" is judged
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation per median absolute deviation
Z95 = 1.96

# (best, score) -> how far apart two validation scores may be and still be the same, as far as the
# validation split can tell (``Task.margin`` at its size)
Margin = Callable[[float, float], float]


class Noise:
    """What a validation score means: which way is better, how far apart two scores may be and still
    be alike (``Task.margin`` at the validation split's size), and what learning nothing scores. The
    tuner ranks candidates with it and the verdicts judge final runs with it: one judgement for both."""

    def __init__(self, spec: ExperimentSpec, size: int, baseline: float | None) -> None:
        task, metric = tasks.get(spec.task), spec.metric
        self.maximise, self.baseline = spec.maximise, baseline
        self.margin: Margin = lambda best, score: task.margin(metric, best, score, size)

    def better(self, score: float) -> float:
        return score if self.maximise else -score

    def learned(self, score: float) -> bool:
        """Better than learning nothing by more than the validation split can blur (no baseline: yes)."""
        if self.baseline is None:
            return True
        return self.better(score) - self.better(self.baseline) > self.margin(score, self.baseline)


def judge(spec: ExperimentSpec, store: Store, info: ExperimentInfo) -> ExperimentInfo:
    """``info`` with a curve verdict for each final run that finished and ``learned`` for each
    method, from the store alone (runs found finished and runs trained now alike)."""
    metric = spec.metric
    noise = Noise(spec, info.sizes.get("validation", 0), info.baselines.get(f"validation_{metric}"))
    keys = [key for choice in info.lr for key in choice.keys]
    choices = [choice.model_copy(update={"learned": learned(choice, store, metric, noise)}) for choice in info.lr]
    return info.model_copy(update={"curves": curves(store, keys, metric, spec.maximise, noise.margin), "lr": choices})


def curves(store: Store, keys: list[str], metric: str, maximise: bool, margin: Margin) -> dict[str, Curve]:
    """Each finished run's curve verdict, where its curve can give one."""
    found: dict[str, Curve] = {}
    for key in keys:
        stored = store.run(key)
        if stored is None or stored.status is not RunStatus.DONE:
            continue
        curve = judge_curve(evaluations(store.series(key), metric), maximise, margin,
                            stored.spec.train.early_stopping_patience)
        if curve is not None:
            found[key] = curve
    return found


def evaluations(series: list[tuple[int, str, float]], metric: str) -> list[tuple[int, float]]:
    """The validation metric at each evaluation during training, by step (the last value logged at
    a step, should a resumed run have logged one twice)."""
    points = {step: value for step, name, value in series if name == f"eval_{metric}" and math.isfinite(value)}
    return sorted(points.items())


def judge_curve(points: list[tuple[int, float]], maximise: bool, margin: Margin,
                patience: int | None = None) -> Curve | None:
    """What one validation curve says about its budget; None where it cannot say (fewer than two
    evaluations, or a metric without a sampling margin and too few evaluations for a scatter)."""
    values = [v for _, v in points]
    sampled = any(margin(v, v) > 0 for v in values)  # a metric with a known sampling error (accuracy)
    wobble = None if sampled else scatter(values)
    if len(points) < 2 or not (sampled or wobble is not None):
        return None

    def noise(i: int, j: int) -> float:
        return margin(values[i], values[j]) if sampled else wobble or 0.0

    sign, last, anchor = 1 if maximise else -1, len(points) - 1, _before(len(points))
    better = [sign * v for v in values]
    earlier = max(range(anchor + 1), key=lambda i: better[i])  # the best before the window
    top = better.index(max(better))  # the first best, as the Trainer keeps it
    gain, drop, since = better[last] - better[earlier], better[top] - better[last], points[anchor][0]
    if top < last and drop > noise(top, last):
        return Curve(converged=True, gain=gain, overfit_after=points[top][0], drop=drop, since=since,
                     noise=noise(top, last))
    plateau = patience is not None and top <= last - patience  # early stopping's rule: no new best for that long
    rising = gain > noise(last, earlier) and not plateau
    return Curve(converged=not rising, gain=gain, since=since, noise=noise(last, earlier))


def _before(count: int) -> int:
    """The index of the last evaluation before the window: the last third of ``count``, at least one."""
    return count - 1 - max(1, math.ceil(count * WINDOW))


def scatter(values: list[float]) -> float | None:
    """The 95 % margin of a difference between two evaluations of one curve, from the curve's own
    scatter: each evaluation's noise σ from the second differences, which take out the trend and,
    less their median, its steady bending too (a decaying learning rate's, an approach to a floor);
    independent noise gives them a variance of 6σ², so σ = 1.4826 × their median absolute deviation
    / √6, and the margin is 1.96 √2 σ, as two accuracies' is 1.96 √(p₁q₁/n + p₂q₂/n). None with
    fewer than three second differences (five evaluations): too few for a median to stand on."""
    first = [b - a for a, b in zip(values, values[1:], strict=False)]
    second = [b - a for a, b in zip(first, first[1:], strict=False)]
    if len(second) < 3:
        return None
    typical = statistics.median(second)
    sigma = MAD_TO_SD * statistics.median(abs(d - typical) for d in second) / math.sqrt(6)
    return Z95 * math.sqrt(2) * sigma


def learned(choice: LrChoice, store: Store, metric: str, noise: Noise) -> bool | None:
    """Whether a method's final validation score (mean over its finished seeds) beat what learning
    nothing scores by more than validation noise. False stays False (the tuner found no rate that
    beat it); None without a baseline, or with no finished run to tell."""
    if choice.learned is False:
        return False
    if noise.baseline is None:
        return None
    scores = [stored.metrics[f"validation_{metric}"] for stored in map(store.run, choice.keys)
              if stored is not None and stored.status is RunStatus.DONE and f"validation_{metric}" in stored.metrics]
    if not scores:
        return choice.learned
    return noise.learned(statistics.fmean(scores))
