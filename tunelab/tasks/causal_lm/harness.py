"""lm-evaluation-harness after training (``eval.harness``): EleutherAI's ``lm-eval`` scores the base
model once and every run's model on the same standard tasks, so that each method has its scores on
them and a general-capability forgetting beside the general-text one.

The parent checks the tasks before anything runs (``check``): lm-eval is installed, every task is
found (else the close names are listed) and builds, its data included; what the tasks are made of is
the ``fingerprint`` that enters the run key. The worker scores the model it has in memory
(``measure``), an adapter on its base model as peft applied it or the whole tuned model, and the base
model, once per model and settings: its scores are kept in the work directory (``harness/``) for every
later run.

A task defined on local files is lm-eval's own YAML format; a relative ``data_files`` path in a task
named in ``tasks`` is read relative to its YAML file (lm-eval reads it relative to the current
folder, which for a run is its run folder), so that a task folder works wherever it is.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import fcntl
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.digests import file_digests
from tunelab.errors import TunelabError, root_cause_line
from tunelab.results import HARNESS_FILE

if TYPE_CHECKING:
    from tunelab.spec import HarnessSpec
    from tunelab.spec.run import RunSpec

EXAMPLES = Path(__file__).parent / "harness_tasks"  # tasks shipped with tunelab, always searched
EXAMPLE = "tunelab_sentiment"
BASE_FOLDER = "harness"  # in the work directory: the base model's scores, one file per model and settings
# lm-eval's bootstrap for the standard error of a metric without a closed form (its default, 100,000,
# takes minutes for a corpus metric such as BLEU); a mean's (accuracy's) is computed directly.
BOOTSTRAP_ITERS = 1000
INSTALL = "pip install 'tunelab[harness]' (or pip install lm-eval)"
# A task's files beside its YAML that make it (its YAML files and the Python its !function tags name),
# fingerprinted with the data files it reads
TASK_FILES = (".yaml", ".yml", ".py")


@dataclass
class Scores:
    """One model's harness results, per ``task:metric`` (lm-eval's metric name, with its filter
    where that is not ``none``: ``exact_match,strict-match``)."""

    values: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)  # lm-eval's standard error of each value
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    # each example's score by its document id, where the value is their mean (accuracy, exact match)
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def from_json(cls, text: str) -> Scores:
        return cls(**json.loads(text))


@dataclass
class Measured:
    """What ``measure`` adds to a run: its metrics, and what the harness cost it."""

    metrics: dict[str, float]
    seconds: float  # the tuned model's evaluation
    base_seconds: float | None  # the base model's, where this run made it; None where it was cached


def key(task: str, metric: str) -> str:
    """A harness score's key among a run's metrics: ``harness:<task>:<metric>``."""
    return f"harness:{task}:{metric}"


# --- in the parent, before anything runs -----------------------------------------------------------

def check(settings: HarnessSpec) -> str:
    """Refuse what would fail every run after its training (lm-eval missing, a task that does not
    exist or does not load), and return what the tasks are made of, for the run key."""
    version = lm_eval_version()
    for folder in settings.include:
        if not Path(folder).is_dir():
            raise TunelabError(f"eval.harness.include: {folder} is not a folder",
                               "give folders of lm-eval task YAML files")
    with quiet():
        manager = task_manager(settings)
        _check_names(settings, manager)
        built = [task for name in settings.tasks for task in _load(manager, name)]
    return fingerprint(settings, manager, built, version)


def lm_eval_version() -> str:
    if util.find_spec("lm_eval") is None:
        raise TunelabError("eval.harness needs lm-eval, EleutherAI's lm-evaluation-harness, which is not installed",
                           INSTALL)
    return metadata.version("lm_eval")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """lm-eval's warnings (a task name found twice, a dataset's notes) kept off the parent's
    terminal, which tunelab's own progress has; a run's log keeps them."""
    import datasets

    datasets.disable_progress_bars()  # as tunelab.data.prepared does
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def task_manager(settings: HarnessSpec) -> Any:
    """lm-eval's task index over the shipped examples and the include folders; lm-eval's own tasks
    (some 14,000 names, seconds to index) only where a task named is none of those."""
    from lm_eval.tasks import TaskManager

    folders = [str(EXAMPLES), *settings.include]
    local = TaskManager(include_path=folders, include_defaults=False)
    if all(name in local.all_tasks for name in settings.tasks):
        return local
    return TaskManager(include_path=folders)


def _check_names(settings: HarnessSpec, manager: Any) -> None:
    for name in settings.tasks:
        if name in manager.all_tasks:
            continue
        close = difflib.get_close_matches(name, manager.all_tasks, n=5, cutoff=0.7) or \
            [found for found in manager.all_tasks if found.startswith(name)][:5]
        unread = _unreadable(settings.include)
        hint = f"close: {', '.join(close)}" if close else f"the example shipped with tunelab is {EXAMPLE}"
        if unread:
            hint += f"; skipped as unreadable: {', '.join(unread[:3])}"
        raise TunelabError(f"eval.harness.tasks: {name!r} is not an lm-eval task (lm-eval {lm_eval_version()}, "
                           f"tunelab's examples{', the include folders' if settings.include else ''})", hint)


def _unreadable(folders: list[str]) -> list[str]:
    """The YAML files of the include folders that lm-eval's index skips without a word: they do not
    parse, or define neither a task nor a group."""
    from lm_eval.tasks._yaml_loader import load_yaml  # what TaskManager reads task files with

    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            try:
                config = load_yaml(path, resolve_func=False)
                if not {"task", "group", "class"} & set(config):
                    found.append(f"{path} (no task: key)")
            except Exception as err:  # YAML and include errors have no common base
                found.append(f"{path} ({root_cause_line(err)})")
    return found


def _load(manager: Any, name: str) -> list[Any]:
    """The task (a group: its tasks), built as a run builds it: its data read."""
    try:
        loaded = manager.load([task_spec(manager, name)])
    except Exception as err:  # lm-eval and datasets raise many types; all mean "cannot build it"
        raise TunelabError(f"eval.harness.tasks: task {name!r} does not load: {root_cause_line(err)}",
                           "check its YAML and its data files; a task whose data is on the Hugging Face hub "
                           "needs the network, or the data in the local cache and HF_DATASETS_OFFLINE=1") from None
    return list(loaded["tasks"].values())


def task_spec(manager: Any, name: str) -> str | dict[str, Any]:
    """What lm-eval is given for a task: its name, or for a task of a local folder its whole
    config, with relative ``data_files`` made relative to its YAML file."""
    entry = manager.task_index.get(name)
    if entry is None or entry.yaml_path is None or entry.kind.name != "TASK" or _in_lm_eval(entry.yaml_path):
        return name
    from lm_eval.tasks._yaml_loader import load_yaml  # what TaskManager reads task files with (includes too)

    config = dict(load_yaml(entry.yaml_path, resolve_func=True))
    kwargs = config.get("dataset_kwargs") or {}
    if "data_files" in kwargs:
        config["dataset_kwargs"] = {**kwargs, "data_files": _beside(kwargs["data_files"], Path(entry.yaml_path))}
    return config


def _beside(files: Any, yaml_path: Path) -> Any:
    """``data_files`` (a path, a list, or a split → path(s) mapping), each relative path made
    relative to the YAML file's folder."""
    if isinstance(files, dict):
        return {split: _beside(value, yaml_path) for split, value in files.items()}
    if isinstance(files, list):
        return [_beside(value, yaml_path) for value in files]
    if isinstance(files, str) and not Path(files).expanduser().is_absolute() and "://" not in files:
        return str(yaml_path.parent / files)
    return files


@functools.cache
def _lm_eval_folder() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent


def _in_lm_eval(path: Path | str) -> bool:
    return Path(path).resolve().is_relative_to(_lm_eval_folder())


def fingerprint(settings: HarnessSpec, manager: Any, built: list[Any], version: str) -> str:
    """What the tasks are: lm-eval's version (its own tasks ship with it), and for a task of a local
    folder its YAML and Python files and every data file it reads, by content."""
    digest = hashlib.sha256(f"lm-eval {version}".encode())
    sources = {Path(entry.yaml_path) for name in settings.tasks
               if (entry := manager.task_index.get(name)) is not None and entry.yaml_path is not None}
    sources |= {Path(source) for task in built
                if isinstance(source := (task.config.metadata or {}).get("config_source"), str) and
                os.path.isfile(source)}
    files = sorted({file for source in sources if not _in_lm_eval(source)
                    for file in source.parent.iterdir() if file.suffix in TASK_FILES and file.is_file()})
    files += sorted({Path(found).resolve() for task in built for found in _data_files(task)} - set(files))
    for name in settings.tasks:
        digest.update(f"\0task:{name}".encode())
    for file, sha in zip(files, file_digests(files), strict=True):
        digest.update(f"\0{file.name}:{sha}".encode())
    return digest.hexdigest()[:16]


def _data_files(task: Any) -> list[str]:
    """The local files a built task read its data from (none for a hub data set)."""
    named = (task.config.dataset_kwargs or {}).get("data_files")
    flat: list[Any] = []
    pending = [named]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += list(value.values())
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            flat.append(value)
    return [value for value in flat if os.path.isfile(value)]


# --- in the worker, after training -------------------------------------------------------------------

def measure(model: Any, tokenizer: Any, run: RunSpec, load_base: Callable[[], Any], untuned: bool = False) -> Measured:
    """The tuned model's scores, the base model's (``load_base``, measured once and cached), each
    score's forgetting, and each example's pair of scores in the run folder (``HARNESS_FILE``).
    ``untuned``: ``model`` is the base model itself (the comparison's base-model row, scored before any
    method trains), whose scores are the base's: cached as they are, not measured twice."""
    assert run.evaluation is not None and run.evaluation.harness is not None
    settings = run.evaluation.harness
    manager = task_manager(settings)
    tuned = score(model, tokenizer, settings, manager)
    base, base_seconds = _base_scores(run, manager, tokenizer, load_base, tuned if untuned else None)
    metrics: dict[str, float] = {}
    for name, value in tuned.values.items():
        metrics[name] = value
        if name in tuned.stderr:
            metrics[f"{name}:stderr"] = tuned.stderr[name]
        if name in base.values:
            sign = 1.0 if tuned.higher_is_better.get(name, True) else -1.0
            metrics[f"{name}:base"] = base.values[name]
            metrics[f"{name}:forgetting"] = sign * (base.values[name] - value)  # > 0: the tuned model lost
            if name in base.stderr:
                metrics[f"{name}:base_stderr"] = base.stderr[name]
    _write_pairs(run.run_dir / HARNESS_FILE, tuned, base)
    return Measured(metrics=metrics, seconds=tuned.seconds, base_seconds=base_seconds)


def score(model: Any, tokenizer: Any, settings: HarnessSpec, manager: Any) -> Scores:
    """``model`` (in memory) on the tasks, as lm-eval's ``simple_evaluate`` scores it."""
    from lm_eval import simple_evaluate

    started = time.perf_counter()
    results = simple_evaluate(
        model=in_memory(model, tokenizer, settings.batch_size),
        tasks=[task_spec(manager, name) for name in settings.tasks], task_manager=manager,
        num_fewshot=settings.num_fewshot, limit=settings.limit, log_samples=True, bootstrap_iters=BOOTSTRAP_ITERS)
    return scores(results, settings.tasks, time.perf_counter() - started)


def in_memory(model: Any, tokenizer: Any, batch_size: int) -> Any:
    """``model``, loaded and in memory (a peft model or a plain one), as an lm-eval model (``LM``),
    with a copy of ``tokenizer`` (lm-eval may set its padding; the run saves the original)."""
    return _in_memory_class()(pretrained=model, tokenizer=copy.deepcopy(tokenizer), batch_size=batch_size)


@functools.cache
def _in_memory_class() -> type:
    """lm-eval's Hugging Face model class for a model already loaded, whose description is not
    looked up on the hub (it has no hub revision there). A prompt-tuned model's logits have a
    position per virtual token before the inputs' own, which lm-eval's causal backend skips (its
    logits' length against the inputs'; test_harness holds it to that)."""
    from lm_eval.models.huggingface import HFLM

    class InMemory(HFLM):
        def get_model_info(self) -> dict[str, Any]:
            return {"model_num_parameters": sum(p.numel() for p in self._model.parameters()),
                    "model_dtype": str(self._model.dtype)}

    return InMemory


def scores(results: dict[str, Any], names: list[str], seconds: float) -> Scores:
    """The named tasks' scores from ``simple_evaluate``'s results (a group's aggregate for a group)."""
    out = Scores(seconds=seconds)
    for name in names:
        row = results.get("results", {}).get(name) or results.get("groups", {}).get(name) or {}
        better = results.get("higher_is_better", {}).get(name, {})
        for found, value in row.items():
            metric, _, filtered = found.partition(",")
            if not filtered or metric.endswith("_stderr") or not _number(value):
                continue
            where = key(name, metric if filtered == "none" else f"{metric},{filtered}")
            out.values[where] = float(value)
            error: Any = row.get(f"{metric}_stderr,{filtered}")  # "N/A" where lm-eval has none
            if _number(error):
                out.stderr[where] = float(error)
            out.higher_is_better[where] = bool(better.get(metric, True))
            per_example = {str(s["doc_id"]): float(s[metric]) for s in results.get("samples", {}).get(name, [])
                           if s.get("filter") == filtered and _number(s.get(metric))}
            if per_example and abs(sum(per_example.values()) / len(per_example) - float(value)) < 1e-9:
                out.samples[where] = per_example  # the score is their mean: a bootstrap over them is its interval
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _base_scores(run: RunSpec, manager: Any, tokenizer: Any, load_base: Callable[[], Any],
                 measured: Scores | None = None) -> tuple[Scores, float | None]:
    """The base model's scores: from the work directory's cache, or ``measured`` already (on the base
    model itself), or measured now by the first run that needs them, under a lock so that runs in
    parallel measure them once."""
    path = base_path(run)
    cached = _read(path)
    if cached is not None:
        return cached, None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        cached = _read(path)
        if cached is not None:
            return cached, None
        seconds = None  # the base model's own run counts its scoring as its harness time, once
        if measured is None:
            base = load_base()
            assert run.evaluation is not None and run.evaluation.harness is not None
            measured = score(base, tokenizer, run.evaluation.harness, manager)
            seconds = measured.seconds
            del base
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(measured)))
        os.replace(tmp, path)
    return measured, seconds


def base_path(run: RunSpec) -> Path:
    """Where the base model's scores are kept: named by the model, the tasks' content and every
    setting that changes a score (the include folders' places do not)."""
    assert run.evaluation is not None and run.evaluation.harness is not None
    settings = run.evaluation.harness.model_dump(exclude={"include"})
    named = json.dumps({"model": run.model_fingerprint, "tasks": run.harness_fingerprint, **settings}, sort_keys=True)
    return Path(run.workdir) / BASE_FOLDER / f"base-{hashlib.sha256(named.encode()).hexdigest()[:16]}.json"


def _read(path: Path) -> Scores | None:
    try:
        return Scores.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


def _write_pairs(path: Path, tuned: Scores, base: Scores) -> None:
    """Each example's score under the tuned and the base model, per harness score whose value is
    their mean: what the report's paired interval on each forgetting resamples. Written whole."""
    lines = []
    for name, examples in tuned.samples.items():
        before = base.samples.get(name, {})
        higher = tuned.higher_is_better.get(name, True)
        lines += [json.dumps({"key": name, "doc": doc, "tuned": value, "base": before[doc], "higher_is_better": higher})
                  for doc, value in examples.items() if doc in before]
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)
