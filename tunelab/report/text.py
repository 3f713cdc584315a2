"""The comparison as text: the table's cells, the lists under it, and the Markdown page. The
terminal (``cli``), Markdown and JSON renderings share ``table``."""

from __future__ import annotations

from typing import Any

from tunelab.report.bootstrap import Interval
from tunelab.report.format import count, format_value, setting
from tunelab.report.summary import HARNESS_PREFIX, MethodRow, Summary, columns, harness_columns, validation_metric
from tunelab.results import CANNOT_MERGE, MERGE_FAILED, MERGED, NO_ADAPTER, Curve, LrChoice, MethodSearch
from tunelab.spec import plugins

_UNITS = {
    "classification": "Accuracy and F1 in %.",
    "causal-lm": "Losses per response token (natural log); exact match, ROUGE-L and label accuracy in %, from greedy "
                 "generation on test; forgetting: the rise in loss on general text, tuned minus base model.",
}



def cell(row: MethodRow, key: str, fmt: str) -> str:
    stat = row.values.get(key)
    if stat is None:
        return "–"
    if fmt == "params":
        pct = f" ({row.trainable_pct:.2f} %)" if row.trainable_pct is not None else ""
        return f"{count(stat.mean)}{pct}"
    text = format_value(stat.mean, fmt)
    return f"{text} ± {format_value(stat.ci95, fmt)}" if stat.ci95 is not None else text



def table(rows: list[MethodRow], task: str = "classification") -> tuple[list[str], list[list[str]]]:
    """Header and cells, shared by the terminal and Markdown renderings. After a sweep, a column
    says how many trials chose each method's settings. A row that did not learn says so in each of
    its metric cells, and in its lr cell at which rates; its costs are shown as measured. The
    method's cell carries its curves' marks (``MARKS``), which ``curve_notes`` explains. A column
    no row measured (generation scores with ``eval.generate: null``) is left out."""
    swept = any(row.sweep for row in rows)
    chosen = any(row.lr for row in rows)
    paired = any(row.paired for row in rows)
    shown = [column for column in columns(task, rows) if _measured(rows, column[0])]
    scores = {key for key, _, _ in plugins.task(task).columns}
    metric, _, _ = plugins.task(task).paired
    header = ["method", "seeds"] + (["trials (done/pruned/failed)"] if swept else []) + (["lr"] if chosen else [])
    header += [title for _, title, _ in shown]
    header += [f"Δ test {metric} vs best [95 % CI]"] if paired else []
    body = []
    for row in rows:
        seeds = f"{row.done}/{row.runs}" if row.done != row.runs else str(row.runs)
        trials = [trial_counts(row.sweep)] if swept else []
        lr = [did_not_learn(row, how=True) if row.learned is False else learning_rate(row)] if chosen else []
        difference = [difference_cell(row, next(fmt for k, _, fmt in shown if k == f"test_{metric}"))] if paired else []
        values = [DID_NOT_LEARN if row.learned is False and key in scores else
                  interval_cell(row.harness[key], fmt) if key in row.harness else cell(row, key, fmt)
                  for key, _, fmt in shown]
        body.append([(row.label or row.method) + marks(row), seeds, *trials, *lr, *values, *difference])
    return header, body


def _measured(rows: list[MethodRow], key: str) -> bool:
    return any(row.values.get(key) is not None or key in row.harness for row in rows)


DID_NOT_LEARN = "did not learn"
# What a row's curves showed (``tunelab.experiment.verdicts``), marked beside its name
MARKS = {"not converged": "†", "overfit": "‡"}


def marks(row: MethodRow) -> str:
    """`` †`` where a run of the row was still improving when its budget ended, `` ‡`` where one
    fell after its best evaluation by more than validation noise."""
    found = row.verdicts.values()
    return ((f" {MARKS['not converged']}" if any(c.converged is False for c in found) else "")
            + (f" {MARKS['overfit']}" if any(c.overfit_after is not None for c in found) else ""))


def did_not_learn(row: MethodRow, how: bool = False) -> str:
    """``did not learn at any rate tried (from 1e-05 to 0.001)``, or ``at lr 0.001`` for one rate;
    with ``how``, how the rates were chosen too: ``(from 1e-05 to 0.001; tuned of 3, +68 s)``,
    ``at lr 0.001 (fixed)``."""
    chosen = _how(row) if how else ""
    if len(row.tried) > 1:
        span = f"from {row.tried[0]:.2g} to {row.tried[-1]:.2g}"
        return f"{DID_NOT_LEARN} at any rate tried ({span}{'; ' + chosen if chosen else ''})"
    if row.tried:
        return f"{DID_NOT_LEARN} at lr {row.tried[0]:.2g}" + (f" ({chosen})" if chosen else "")
    return DID_NOT_LEARN



def learning_rate(row: MethodRow) -> str:
    """The rate a row ended with and how it was chosen: ``0.005 (tuned of 3, +68 s)``."""
    how = _how(row)
    if row.sweep:
        return f"{row.options.get('lr', 0):.2g} ({how})"
    return f"{row.lr.lr:.2g} ({how})" if row.lr else "–"


def _how(row: MethodRow) -> str:
    """How a row's rate was chosen: ``sweep``, ``tuned of 3, +68 s``, ``fixed``, ``default``."""
    if row.sweep:
        return "sweep"
    if row.lr is None:
        return ""
    if row.lr.how == "tuned" and row.lr.candidates:
        return f"tuned of {len(row.lr.candidates)}, +{row.lr.tuning_seconds:.0f} s"
    return row.lr.how



def difference_cell(row: MethodRow, fmt: str) -> str:
    """``−2.3 [−4.1, −0.6] *``: the row minus the best, its interval, and * where it excludes zero."""
    if row.learned is False:
        return DID_NOT_LEARN
    if row.best:
        return "best"
    if row.paired is None:
        return "–"
    return interval_cell(row.paired, fmt)


def interval_cell(p: Interval, fmt: str) -> str:
    """``−2.3 [−4.1, −0.6] *``: a paired difference, its 95 % interval, and * where it excludes zero."""
    signed = "{:+" + (fmt[2:] if fmt.startswith("{:") else ".1f}")
    scale = 100 if fmt == "pct" else 1
    text = (f"{signed.format(p.difference * scale)} [{signed.format(p.low * scale)}, "
            f"{signed.format(p.high * scale)}]")
    return text + (" *" if p.excludes_zero else "")



def indistinguishable(rows: list[MethodRow]) -> str | None:
    """In plain words, which rows the test set cannot tell from the best, and which finished rows
    the comparison leaves out for want of their predictions; rows that did not learn are no part of
    it (``verdict`` names them)."""
    rows = [row for row in rows if row.learned is not False]
    best = next((row for row in rows if row.best), None)
    left_out = [row.label for row in rows if row.unpaired]
    if best is None:
        if not left_out or sum(1 for row in rows if row.done) < 2:
            return None
        return (f"No best on test is named: the Δ column needs each finished row's predictions.jsonl ({_WHERE}), "
                f"missing for {', '.join(left_out)}, which may have scored better than the rows that have them.")
    ties = [row.label for row in rows if row.paired is not None and not row.best and not row.paired.excludes_zero]
    worse = [row.label for row in rows if row.paired is not None and row.paired.excludes_zero]
    text = f"Best on test: {best.label}."
    if ties:
        text += f" Indistinguishable from it on this test set (their 95 % interval includes 0): {', '.join(ties)}."
    if worse:
        text += f" Different from it (marked *): {', '.join(worse)}."
    if left_out:
        text += (f" Left out of the Δ column, lower on test but without predictions.jsonl ({_WHERE}): "
                 f"{', '.join(left_out)}.")
    return text


# Where a row's predictions are, and why a finished row may have none.
_WHERE = "runs/<key> in the work directory: deleted, or trained before predictions were kept"


def verdict(summary: Summary) -> str | None:
    """What the comparison says under its table, in words: which rows the test set cannot tell from
    the best, which did not learn, and whether a longer budget could change the answer."""
    parts = [indistinguishable(summary.rows), _not_learned(summary), _budget(summary)]
    return " ".join(part for part in parts if part) or None


def _not_learned(summary: Summary) -> str | None:
    """The rows that did not learn, with the rates they were tried at and what learning nothing scores."""
    rows = [row for row in summary.rows if row.learned is False]
    if not rows:
        return None
    metric = validation_metric(summary.spec)
    baseline = summary.info.baselines.get(f"validation_{metric}")
    _, fmt = _column(summary.task, f"validation_{metric}")
    who = "the untuned base model" if summary.info.base else "learning nothing"
    nothing = f"the {format_value(baseline, fmt)} that {who} scores" if baseline is not None else f"what {who} scores"
    named = "; ".join(f"{row.label}, {did_not_learn(row).removeprefix(DID_NOT_LEARN + ' ')}" for row in rows)
    methods = [row for row in summary.rows if row.done and not row.base]
    lead = ("No method learned, so none is named best" if all(row.learned is False for row in methods)
            else "Did not learn, so never named best")
    better = "above" if plugins.task(summary.task).greater_is_better(metric) else "below"
    return f"{lead} (validation {metric} not {better} {nothing} by more than validation noise): {named}."


def _budget(summary: Summary) -> str | None:
    """Where a row was still improving when its budget ended: that a longer one could change the
    table, and how to get one."""
    rising = [row for row in summary.rows if any(c.converged is False for c in row.verdicts.values())]
    if not rising:
        return None
    best = next((row for row in summary.rows if row.best), None)
    mark = MARKS["not converged"]
    if best in rising:
        change = "could change the ranking" if len(_methods(summary)) > 1 else "could score higher"
        return f"The best, {best.label}, was still improving when its budget ended ({mark}): a longer budget " \
               f"{change} ({longer_budget(summary, best)})."
    learned = any(row.learned is not False for row in summary.rows if row.done and not row.base)
    change = ("may let them learn" if not learned else "could score higher" if len(_methods(summary)) == 1
              else "could move them up")
    return f"Still improving when the budget ended ({mark}): {', '.join(row.label for row in rising)}; a longer " \
           f"budget {change} ({longer_budget(summary, rising[0])})."


def _methods(summary: Summary) -> list[MethodRow]:
    """The rows of methods: every row but the untuned base model's."""
    return [row for row in summary.rows if not row.base]


def longer_budget(summary: Summary, row: MethodRow) -> str:
    """How to give ``row`` twice its budget: the ``tunelab compare`` flag, or the method's own
    ``train`` setting where the experiment gives it one (which a flag does not override)."""
    key = "max_steps" if row.train.get("max_steps") else "epochs"
    value = 2 * (row.train.get(key) or 1)
    methods = summary.spec.get("methods") or []
    index = row.lr.index if row.lr else None
    own = methods[index].get("train", {}) if index is not None and index < len(methods) and isinstance(
        methods[index], dict) else {}
    if "epochs" in own or "max_steps" in own:
        return f"set methods[{index}] ({row.method}).train.{key}: {value:g} in the experiment file and run it again"
    return f"run the same tunelab compare with --{key.replace('_', '-')} {value:g}, twice this budget"


def curve_notes(summary: Summary) -> list[str]:
    """What each mark beside a method says, per marked row: by how much, from which step, against
    what noise (``tunelab.experiment.verdicts``)."""
    _, fmt = _column(summary.task, f"validation_{validation_metric(summary.spec)}")

    def amount(value: float | None) -> str:
        return format_value(value, fmt) + (" points" if fmt == "pct" else "")

    notes = []
    for row in summary.rows:
        rising = [c for c in row.verdicts.values() if c.converged is False]
        fell = [c for c in row.verdicts.values() if c.overfit_after is not None]
        if rising:
            c = max(rising, key=lambda c: c.gain or 0.0)
            notes.append(f"{MARKS['not converged']} not converged, {row.label}{_seeds(rising, row)}: its last "
                         f"evaluation beat its best up to step {c.since} by {amount(c.gain)} (noise "
                         f"{amount(c.noise)}); more training may score higher.")
        if fell:
            c = max(fell, key=lambda c: c.drop or 0.0)
            notes.append(f"{MARKS['overfit']} overfit after step {c.overfit_after}, {row.label}{_seeds(fell, row)}: "
                         f"its last evaluation was {amount(c.drop)} below that step's (noise {amount(c.noise)}); "
                         f"its scores are from step {c.overfit_after}'s weights, which the run kept.")
    return notes


def _seeds(flagged: list[Curve], row: MethodRow) -> str:
    """`` (2 of 3 seeds; the largest shown)`` where not every seed's run is flagged, or several are."""
    judged = len(row.verdicts)
    if judged <= 1:
        return ""
    return f" ({len(flagged)} of {judged} seeds{'; the largest shown' if len(flagged) > 1 else ''})"


def _column(task: str, key: str) -> tuple[str, str]:
    """A metric's column title and format (``Task.columns``), the key itself where it has none."""
    return next(((title, fmt) for k, title, fmt in plugins.task(task).columns if k == key), (key, "{:.3f}"))



def trial_counts(search: MethodSearch | None) -> str:
    if search is None:
        return "–"
    return f"{search.trials} ({search.complete}/{search.pruned}/{search.failed})"



def tuned_settings(search: MethodSearch) -> str:
    """The searched values a sweep chose, as ``lr=3.2e-04, r=16, train.batch_size=16``."""
    return ", ".join(f"{name}={setting(value)}" for name, value in search.params.items()) or "–"



def markdown(summary: Summary) -> str:
    rows = summary.rows
    header, body = table(rows, summary.task)
    lines = [f"# {md_escape(summary.title)}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body]
    said = verdict(summary)
    if said:
        lines += ["", md_escape(said)]
    lines += _markdown_per_class(summary)
    lines += _markdown_latency(summary)
    lines += _markdown_table(generation_table(summary))
    for heading, items in sections(summary):
        lines += ["", heading, *(f"- {md_escape(item)}" for item in items)]
    lines += ["", explanation(summary.task)]
    return "\n".join(lines) + "\n"



def _markdown_per_class(summary: Summary) -> list[str]:
    """The per-class F1 table under the comparison's, as Markdown lines (none without it)."""
    return _markdown_table(per_class_table(summary))


def _markdown_table(found: tuple[str, list[str], list[list[str]]] | None) -> list[str]:
    """A heading and a table under the comparison's, as Markdown lines (none without it)."""
    if found is None:
        return []
    heading, header, body = found
    return ["", md_escape(heading), "", "| " + " | ".join(md_escape(c) for c in header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body)]


def _markdown_latency(summary: Summary) -> list[str]:
    """The inference-cost table and its notes, as Markdown lines (none where no run measured it)."""
    found = latency_table(summary)
    if found is None:
        return []
    heading, header, body, notes = found
    return ["", md_escape(heading), "", "| " + " | ".join(md_escape(c) for c in header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body),
            *([""] + [f"- {md_escape(note)}" for note in notes] if notes else [])]


# Up to this many classes, the per-class table under the comparison shows them all; above, only
# the DIFFER_MOST where the methods differ most
ALL_CLASSES = 10
DIFFER_MOST = 5


def per_class_rows(summary: Summary) -> list[MethodRow]:
    """The rows the per-class comparison is between: those with per-class scores that learned (a
    row that did not learn scores what a constant guess scores, class by class too)."""
    return [row for row in summary.rows if row.per_class and row.learned is not False]


def differ_most(summary: Summary, limit: int | None = DIFFER_MOST) -> list[str]:
    """The classes, those where the rows that learned differ most first: by the spread (largest
    minus smallest) of their test F1, or with a single row, its lowest F1 first; ties in the data's
    order. ``limit`` of them, all with None."""
    rows = per_class_rows(summary)
    if not rows:
        return []
    labels = list(rows[0].per_class)

    def key(label: str) -> float:
        f1 = [row.per_class[label].f1 for row in rows if label in row.per_class]
        return -(max(f1) - min(f1)) if len(rows) > 1 else f1[0]

    return sorted(labels, key=key)[:limit]


def per_class_table(summary: Summary) -> tuple[str, list[str], list[list[str]]] | None:
    """Heading, header and cells of the per-class F1 table under the comparison: every class where
    there are few, else the ones where the methods differ most; None without per-class scores."""
    rows = per_class_rows(summary)
    if not rows:
        return None
    total = len(rows[0].per_class)
    shown = differ_most(summary, None if total <= ALL_CLASSES else DIFFER_MOST)
    several = len(rows) > 1
    which = (f"each of the {total} classes" if len(shown) == total else f"the {len(shown)} of {total} classes")
    order = ("where the methods that learned differ most (the spread: highest minus lowest F1) first"
             if several else f"{rows[0].label} scores lowest first")
    left = [row.label for row in summary.rows if row.per_class and row.learned is False]
    heading = (f"Per-class test F1 (%), {which}, {order}" + (f"; left out, as they did not learn: {', '.join(left)}"
               if left else "") + ". Every class's precision, recall and F1 are in comparison.json.")
    header = ["class", "test examples", *(row.label for row in rows)] + (["spread"] if several else [])
    body = []
    for label in shown:
        f1 = [row.per_class[label].f1 if label in row.per_class else None for row in rows]
        known = [v for v in f1 if v is not None]
        cells = [label, str(rows[0].per_class[label].support), *("–" if v is None else f"{100 * v:.1f}" for v in f1)]
        body.append(cells + ([f"{100 * (max(known) - min(known)):.1f}"] if several else []))
    return heading, header, body


# The inference-cost table's cells for the merged form of a row that has none, by ``Costs.merge``
_UNMERGED_CELL = {NO_ADAPTER: "= as trained", CANNOT_MERGE: "cannot merge", MERGE_FAILED: "failed"}
LATENCY_FORMAT = "{:.1f}"


def latency_table(summary: Summary) -> tuple[str, list[str], list[list[str]], list[str]] | None:
    """Heading, header, cells and notes of the inference-cost table (``Costs.latency_ms`` and the rest):
    per row, one batch's forward pass (and, for causal-lm, greedy generation) as trained and merged, and
    the throughput; None where no run measured it. Apart from the comparison's table, which it would
    make too wide to read."""
    rows = [row for row in summary.rows if "latency_ms" in row.values or row.latency_note]
    if not rows:
        return None
    generated = next((row.values["generate_new_tokens"].mean for row in rows if "generate_new_tokens" in row.values),
                     None)
    header = ["method", "batch", "merge", "forward as trained (ms)", "forward merged (ms)", "merged vs as trained",
              "examples/s as trained", "examples/s merged"]
    if generated is not None:
        header += [f"generate {generated:.0f} tokens as trained (ms)", "generate merged (ms)", "merged vs as trained"]
    body = []
    for row in rows:
        cells = [row.label, cell(row, "latency_batch_size", "{:.0f}"), row.merge or "–", *_both(row, "latency_ms"),
                 cell(row, "examples_per_second", "{:.1f}"), _merged_cell(row, "examples_per_second", "{:.1f}")]
        body.append(cells + (_both(row, "generate_latency_ms") if generated is not None else []))
    examples = next((row.values["latency_examples"].mean for row in rows if "latency_examples" in row.values), None)
    what = "forward pass" + (f" and greedy generation of exactly {generated:.0f} tokens per prompt"
                             if generated is not None else "")
    heading = (f"Inference cost: each method's model timed after training on {examples or 0:.0f} test examples at the "
               f"evaluation batch size, its {what}; ms: one batch's time (what each example in it waits), the median "
               "of the timed passes. As trained: an adapter unmerged, as tunelab predict serves it; merged: peft's "
               "merge_and_unload, as tunelab export writes it; = as trained: the method trains the model's own "
               "weights, so nothing is left to merge.")
    notes = [f"{row.label}: {row.latency_note}" for row in rows if row.latency_note]
    return heading, header, body, notes


def _both(row: MethodRow, key: str) -> list[str]:
    """A latency as trained, merged, and how they differ."""
    return [cell(row, key, LATENCY_FORMAT), _merged_cell(row, key, LATENCY_FORMAT), _merged_change(row, key)]


def _merged_cell(row: MethodRow, key: str, fmt: str) -> str:
    """The merged form's value of ``key``, or why there is none."""
    if row.merge == MERGED:
        return cell(row, f"merged_{key}", fmt)
    return _UNMERGED_CELL.get(row.merge or "", "–")


def _merged_change(row: MethodRow, key: str) -> str:
    """``-12 %``: how much longer (+) or shorter (-) the merged model takes than the model as trained."""
    trained, merged = row.values.get(key), row.values.get(f"merged_{key}")
    if row.merge != MERGED or trained is None or merged is None or not trained.mean:
        return "–"
    return f"{100 * (merged.mean - trained.mean) / trained.mean:+.0f} %"


def generation_rows(summary: Summary) -> list[MethodRow]:
    """The rows with generation scores on test (causal-lm), the untuned base first as in the table."""
    return [row for row in summary.rows if row.generation is not None]


def generation_table(summary: Summary) -> tuple[str, list[str], list[list[str]]] | None:
    """Heading, header and cells of the generation table under the comparison (causal-lm): each row's
    scores on the test prompts it answered, and its difference to the best method's with a paired
    interval; a row that did not learn says so in each cell. None without generations."""
    rows = generation_rows(summary)
    if not rows:
        return None
    task = plugins.task(summary.task)
    metrics = [m for m in task.example_metrics if any(m in row.generation.scores for row in rows if row.generation)]
    prompts = sorted({row.generation.examples for row in rows if row.generation})
    counted = (f"{prompts[0]} test prompts" if len(prompts) == 1
               else f"{prompts[0]} to {prompts[-1]} test prompts, as many as each row answered")
    heading = (f"Generation on test, greedy ({counted}): scores in %, each the mean over those prompts; "
               "Δ vs best: the row minus the best method's on the same prompts, with a paired bootstrap 95 % "
               "interval (* where it excludes 0).")
    titles = [_column(summary.task, f"test_{m}")[0] for m in metrics]
    header = ["method"] + [cell for title in titles for cell in (title, "Δ vs best [95 % CI]")]
    body = []
    for row in rows:
        assert row.generation is not None
        cells = [(row.label or row.method) + marks(row)]
        for metric in metrics:
            found = row.generation.scores.get(metric)
            if row.learned is False:
                cells += [DID_NOT_LEARN, DID_NOT_LEARN]
            elif found is None:
                cells += ["–", "–"]
            else:
                fmt = _column(summary.task, f"test_{metric}")[1]
                difference = ("best" if found.best else interval_cell(found.paired, fmt) if found.paired else "–")
                cells += [format_value(found.score, fmt), difference]
        body.append(cells)
    return heading, header, body


def sections(summary: Summary) -> list[tuple[str, list[str]]]:
    """The lists under the table, as plain text (each rendering escapes them its own way): how
    learning rates were chosen, what a sweep chose, the runs that did not finish, the notes."""
    rows = summary.rows
    task = plugins.task(summary.task)
    key = f"validation_{validation_metric(summary.spec)}"

    def shown(value: float) -> str:
        return task.score({key: value}, key)

    lists = [
        ("Learning rates, chosen on validation (each candidate trained on the first seed to the rung; the lowest "
         "rate within validation noise of the best continued):",
         [f"{r.label}: {lr_story(r.lr, shown)}" for r in rows if r.lr and r.lr.candidates]),
        ("The new head:", [head_story(summary.info.head, shown)] if summary.info.head else []),
        ("Tuned hyperparameters (each method's best trial, on validation only):",
         [f"{r.label}: {tuned_settings(r.sweep)} (best validation {setting(r.sweep.best_validation)}, "
          f"trial {r.sweep.best_trial})" for r in rows if r.sweep]),
        ("Validation curves (each change judged against validation noise: what another sample of the validation "
         "split's size could reverse, or for a loss the curve's own evaluation-to-evaluation scatter):",
         curve_notes(summary)),
        ("lm-evaluation-harness (eval.harness):", harness_notes(summary)),
        ("Runs that did not finish:", [f"{r.label} {f}" for r in rows for f in r.failed]),
        ("Notes:", summary.all_notes),
    ]
    return [(heading, items) for heading, items in lists if items]



def harness_notes(summary: Summary) -> list[str]:
    """What the harness columns are: the settings, the base model's scores (with lm-eval's
    standard errors), what forgetting and its interval mean, what the harness cost; none without them."""
    shown = [(key, title, fmt) for key, title, fmt in harness_columns(summary.rows)
             if key.startswith(HARNESS_PREFIX) and not key.endswith(":forgetting")]
    if not shown:
        return []
    settings = (summary.spec.get("eval") or {}).get("harness") or {}
    limit = settings.get("limit")
    shots = settings.get("num_fewshot")
    first = next(row for row in summary.rows if any(key in row.values for key, _, _ in shown))

    def base(key: str, fmt: str) -> str:
        value, error = first.values.get(f"{key}:base"), first.values.get(f"{key}:base_stderr")
        return format_value(value.mean if value else None, fmt) + \
            (f" (standard error {format_value(error.mean, fmt)})" if error else "")

    # by the run that measured it, or the base-model row's own scoring
    keys = [(row, "harness_seconds" if row.base else "harness_base_seconds") for row in summary.rows]
    seconds = [row.values[key].mean for row, key in keys if key in row.values]
    return [
        f"Tasks {', '.join(settings.get('tasks', []))}, "
        + (f"the first {limit} examples of each" if limit else "every example") + ", "
        + (f"{shots}-shot" if shots is not None else "each task's own number of shots") + ".",
        "The base model (before tuning): " + "; ".join(f"{title} {base(key, fmt)}" for key, title, fmt in shown)
        + (f"; measured once in {seconds[0]:.0f} s and kept for every run" if seconds else "") + ".",
        "Forgetting: the base model's score minus the tuned model's (for a metric where lower is better, the "
        "other way), so that above 0 the tuning lost some of it, as for the general-text forgetting; in brackets "
        "a paired bootstrap 95 % interval over the examples both models were scored on (2,000 resamples; * where "
        "it excludes 0). Harness time: the tuned model's evaluation, per run.",
    ]


def explanation(task: str) -> str:
    """What the table's numbers are, under every rendering of it."""
    return (f"Mean ± 95 % t-interval over seeds (with two or more). {_UNITS[task]} "
            "Peak memory: the run process's peak RSS on CPU, CUDA max allocated on GPU. Δ vs best: the test "
            "metric minus the best row's, with a paired bootstrap 95 % interval over the test examples "
            "(2,000 resamples). Time to 95 %: training seconds until the validation metric first reached "
            "95 % of its best (for a loss: came within 5 % of it).")



def lr_story(choice: LrChoice, show: Any = setting) -> str:
    """``0.005 from 0.0005: 50.0, 0.0015: 50.0, 0.005: 69.6 (validation at step 19)``: each
    candidate's validation score at the rung, shown by ``show``."""
    scores = ", ".join(f"{c.lr:.2g}: " + (show(c.validation) if c.validation is not None else str(c.status))
                       for c in choice.candidates)
    step = next((c.step for c in choice.candidates if c.step), None)
    text = f"{choice.lr:.2g} from {scores}" + (f" (validation at step {step})" if step else "")
    return text + (f"; {choice.note}" if choice.note else "")



def head_story(head: LrChoice, show: Any = setting) -> str:
    """The one rate every method's new classification head learned at, and where it came from."""
    how = {"tuned": "the linear probe's rate, chosen on validation: " + lr_story(head, show),
           "fixed": "train.head_lr, as set", "default": "the linear probe's default (tuning was off)"}[head.how]
    return f"every method's new head learned at {head.lr:.2g} ({how})"



def md_escape(text: str) -> str:
    """Markdown-safe on one line: a newline in a user string (a multi-line ``init_text``) would
    end a table row, so it becomes a space, and every character Markdown reads is escaped."""
    text = " ".join(text.splitlines())
    for char in "\\|*_`<>[]":
        text = text.replace(char, "\\" + char)
    return text
