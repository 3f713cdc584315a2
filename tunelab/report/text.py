"""The comparison as text: the table's cells, the lists under it, and the Markdown page. The
terminal (``cli``), Markdown and JSON renderings share ``table``."""

from __future__ import annotations

from typing import Any

from tunelab.report.format import count, format_value, setting
from tunelab.report.summary import MethodRow, Summary, columns, validation_metric
from tunelab.results import LrChoice, MethodSearch
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
    says how many trials chose each method's settings."""
    swept = any(row.sweep for row in rows)
    chosen = any(row.lr for row in rows)
    paired = any(row.paired for row in rows)
    shown = columns(task)
    metric, _, _ = plugins.task(task).paired
    header = ["method", "seeds"] + (["trials (done/pruned/failed)"] if swept else []) + (["lr"] if chosen else [])
    header += [title for _, title, _ in shown]
    header += [f"Δ test {metric} vs best [95 % CI]"] if paired else []
    body = []
    for row in rows:
        seeds = f"{row.done}/{row.runs}" if row.done != row.runs else str(row.runs)
        trials = [trial_counts(row.sweep)] if swept else []
        lr = [learning_rate(row)] if chosen else []
        difference = [difference_cell(row, next(fmt for k, _, fmt in shown if k == f"test_{metric}"))] if paired else []
        body.append([row.label or row.method, seeds, *trials, *lr] + [cell(row, key, fmt) for key, _, fmt in shown]
                    + difference)
    return header, body



def learning_rate(row: MethodRow) -> str:
    """The rate a row ended with and how it was chosen: ``0.005 (tuned of 3, +68 s)``."""
    if row.sweep:
        return f"{row.options.get('lr', 0):.2g} (sweep)"
    if row.lr is None:
        return "–"
    how: str = row.lr.how
    if how == "tuned" and row.lr.candidates:
        how = f"tuned of {len(row.lr.candidates)}, +{row.lr.tuning_seconds:.0f} s"
    return f"{row.lr.lr:.2g} ({how})"



def difference_cell(row: MethodRow, fmt: str) -> str:
    """``−2.3 [−4.1, −0.6] *``: the row minus the best, its interval, and * where it excludes zero."""
    if row.best:
        return "best"
    if row.paired is None:
        return "–"
    p = row.paired
    signed = "{:+" + (fmt[2:] if fmt.startswith("{:") else ".1f}")
    scale = 100 if fmt == "pct" else 1
    text = (f"{signed.format(p.difference * scale)} [{signed.format(p.low * scale)}, "
            f"{signed.format(p.high * scale)}]")
    return text + (" *" if p.excludes_zero else "")



def indistinguishable(rows: list[MethodRow]) -> str | None:
    """In plain words, which rows the test set cannot tell from the best, and which finished rows
    the comparison leaves out for want of their predictions."""
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
    verdict = indistinguishable(rows)
    if verdict:
        lines += ["", md_escape(verdict)]
    for heading, items in sections(summary):
        lines += ["", heading, *(f"- {md_escape(item)}" for item in items)]
    lines += ["", explanation(summary.task)]
    return "\n".join(lines) + "\n"



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
        ("Runs that did not finish:", [f"{r.label} {f}" for r in rows for f in r.failed]),
        ("Notes:", summary.all_notes),
    ]
    return [(heading, items) for heading, items in lists if items]



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
