"""Which methods fit a memory and a time budget, and at what batch size, ordered by the quality to
expect: ``tunelab recommend``. Each method is tried as the experiment would train it, then with
gradient checkpointing, then at halved batch sizes down to 1 (``tunelab.estimation.memory`` for the memory
and time of each); the first that fits is its option. Expected quality comes from the user's own
store when it holds finished runs of this model and task, otherwise from ``PRIOR``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tunelab import tasks
from tunelab.errors import TunelabError
from tunelab.estimation.memory import Estimate, Setup, estimate
from tunelab.estimation.step_time import duration
from tunelab.models import model_folder
from tunelab.store import FILE_NAME, Store

if TYPE_CHECKING:
    from tunelab.spec import ExperimentSpec

# The prior, best first: test accuracy of every method, each at its tuned learning rate, on SST-2 with
# MiniLM (bench/results/methods-sst2.md; qlora beside lora, as Dettmers et al. 2023 found it to
# match 16-bit LoRA), and test loss of the four measured on instruction-tuned SmolLM2 (bench/results/
# compare-default-causal.md), then the rest in the classification order. One model, one budget each: a
# prior, not a law; the user's own results replace it.
PRIOR = {
    "classification": ["dora", "lora", "qlora", "oft", "full", "llrd", "pissa", "loha", "olora", "lora-plus", "rslora",
                       "freeze", "ia3", "lokr", "adalora", "vera", "bitfit", "head", "prompt-tuning", "p-tuning"],
    "causal-lm": ["full", "lora", "prompt-tuning", "prefix-tuning"],
}
_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION_TEXT = re.compile(rf"\s*(?:{_NUMBER}\s*h)?\s*(?:{_NUMBER}\s*m(?:in)?)?\s*(?:{_NUMBER}\s*s)?\s*",
                            re.IGNORECASE)


@dataclass(frozen=True)
class Option:
    """One method's verdict under the budget."""
    method: str
    fits: bool
    why: str  # one sentence
    estimate: Estimate | None = None  # at the chosen (or, when nothing fits, the smallest) setting
    setup: Setup | None = None
    seconds: float | None = None  # the training steps' time at that setting
    expected: str = ""  # where its quality comes from, for the table


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``1h30m``, ``90s`` as seconds."""
    found = _DURATION_TEXT.fullmatch(text)
    if not found or not any(found.groups()):
        raise TunelabError(f"cannot read --time-budget {text!r} as a duration", "write it like 30m, 2h, 1h30m or 90s")
    hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return 3600 * hours + 60 * minutes + seconds


def recommend(spec: ExperimentSpec, memory: int, seconds: float | None, device: str, examples: int) -> list[Option]:
    """Every method of the experiment's task under ``memory`` bytes and ``seconds`` of training
    (None: no time limit), best expected first; refuses (exit 2) when no method fits either."""
    if seconds is not None and device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise TunelabError("--time-budget needs the time per step, measured on the device, and this machine "
                               "has no CUDA GPU", "run recommend on the GPU machine, or drop --time-budget")
    options = _fit(spec, memory, device, examples)
    if not any(o.fits for o in options):
        smallest = min((o for o in options if o.estimate and o.estimate.memory), key=_peak_bytes, default=None)
        if smallest is None:
            raise TunelabError(f"no method of task {spec.task} can train model {spec.model}", "tunelab methods")
        raise TunelabError(f"nothing fits in {_gb(memory)}: the smallest option, {smallest.method} at batch "
                           f"{_setting(smallest.setup)}, needs {_gb(_peak_bytes(smallest))}",
                           "give more memory, a shorter train.max_length, or a smaller model")
    if seconds is not None:
        options = [_in_time(o, seconds) for o in options]
        if not any(o.fits for o in options):
            fastest = min((o for o in options if o.seconds is not None), key=lambda o: o.seconds or 0.0)
            raise TunelabError(f"nothing trains within {duration(seconds)}: the fastest option that fits, "
                               f"{fastest.method}, takes about {duration(fastest.seconds or 0.0)}",
                               "give more time, or fewer epochs or examples")
    return _ranked(spec, options)


def _fit(spec: ExperimentSpec, memory: int, device: str, examples: int) -> list[Option]:
    """Each method at the first setting of the ladder that fits: as configured, with gradient
    checkpointing, then half the batch each time down to 1."""
    train = spec.train
    ladder = [(train.batch_size, train.gradient_checkpointing), (train.batch_size, True)]
    ladder += [(b, True) for b in _halvings(train.batch_size)]
    ladder = list(dict.fromkeys(ladder))
    pending: list[str] | None = None  # None: every method of the task, those that cannot train it marked
    found: dict[str, Option] = {}
    for batch, checkpointing in ladder:
        setup = Setup(batch, train.max_length, device, gradient_checkpointing=checkpointing)
        for row in estimate(spec.model, spec.task, pending, spec.trust_remote_code, setup, workdir=spec.workdir):
            if row.refused:
                found[row.method] = Option(row.method, False, f"cannot train this model: {row.refused}")
            elif row.fits(memory):
                steps = train.total_steps(examples, batch)
                time = steps * row.step_seconds if row.step_seconds is not None else None
                found[row.method] = Option(row.method, True, _fits_why(row, setup, memory, time, steps), row, setup,
                                           time)
            else:
                found[row.method] = Option(row.method, False, "", row, setup)
        pending = [name for name, option in found.items() if not option.fits and option.estimate]
        if not pending:
            break
    return [o if o.fits or o.estimate is None else
            replace(o, why=f"needs {_gb(_peak_bytes(o))} even at batch {_setting(o.setup)}, more than {_gb(memory)}")
            for o in found.values()]


def _in_time(option: Option, budget: float) -> Option:
    if not option.fits or option.seconds is None or option.seconds <= budget:
        return option
    return replace(option, fits=False, why=f"fits in memory at batch {_setting(option.setup)} but its training "
                                           f"takes about {duration(option.seconds)}, over {duration(budget)}")


def _ranked(spec: ExperimentSpec, options: list[Option]) -> list[Option]:
    """Fitting methods first; within each group, the methods the store has results for, by their
    mean metric, then the others by ``PRIOR``."""
    task = tasks.get(spec.task)
    metric, measured = _measured(spec)
    sign = 1 if task.greater_is_better(metric) else -1
    prior = PRIOR.get(spec.task, []) + [m for m in PRIOR["classification"] if m not in PRIOR.get(spec.task, [])]

    def key(option: Option) -> tuple[int, int, float, int]:
        found = measured.get(option.method)
        return (0 if option.fits else 1, 0 if found else 1, -sign * found[0] if found else 0.0,
                prior.index(option.method) if option.method in prior else len(prior))

    def expected(method: str) -> str:
        if method in measured:
            return measured[method][1]
        return f"prior: #{prior.index(method) + 1} of {len(prior)}" if method in prior else "no prior"

    return [replace(option, expected=expected(option.method)) for option in sorted(options, key=key)]


def _measured(spec: ExperimentSpec) -> tuple[str, dict[str, tuple[float, str]]]:
    """The task's paired metric, and per method the mean of it on test (validation's where no test)
    over the store's finished runs of this model and task, with a phrase saying so."""
    from pathlib import Path

    task = tasks.get(spec.task)
    metric = task.paired[0]
    if not (Path(spec.workdir) / FILE_NAME).is_file():
        return metric, {}
    store = Store(Path(spec.workdir), readonly=True)
    try:
        path = model_folder(spec.model)
        runs = [r for r in store.runs()
                if r.status == "done" and r.spec.model_path == path and r.spec.task == spec.task]
    finally:
        store.close()
    out = {}
    for method in sorted({r.method for r in runs}):
        for split in ("test", "validation"):  # test where its runs have it: a sweep's trials only have validation
            values = [r.metrics[f"{split}_{metric}"] for r in runs if r.method == method and f"{split}_{metric}"
                      in r.metrics]
            if values:
                mean = sum(values) / len(values)
                out[method] = (mean, f"your store: {split} {metric} {task.score({metric: mean}, metric)} over "
                                     f"{len(values)} run(s)")
                break
    return metric, out


def _fits_why(row: Estimate, setup: Setup, memory: int, seconds: float | None, steps: int) -> str:
    assert row.memory is not None
    how = f"batch {_setting(setup)}"
    time = f"; {steps:,} steps in about {duration(seconds)}" if seconds is not None else ""
    return f"fits at {how}: {_gb(row.memory.total)} of {_gb(memory)}{time}"


def _halvings(batch: int) -> list[int]:
    out = []
    while batch > 1:
        batch //= 2
        out.append(batch)
    return out


def _peak_bytes(option: Option) -> int:
    return option.estimate.memory.total if option.estimate and option.estimate.memory else 0


def _setting(setup: Setup | None) -> str:
    if setup is None:
        return "–"
    return f"{setup.batch_size}" + (" with gradient checkpointing" if setup.gradient_checkpointing else "")


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"  # as budgets are written: 24GB is 24·10⁹ bytes
