"""MkDocs hook: the parts of the docs that the code already knows, generated at build time.

A page asks for a generated part with an HTML comment on a line of its own::

    <!-- generated: methods -->
    <!-- generated: bench perf-bcdg.md -->

and the comment is replaced by Markdown built from the code (the typer app, the pydantic schema,
the method and task registries, a throwaway store) or from a benchmark's results file. An unknown
name, a missing results file or a results file without its provenance fails the build, so a page
cannot silently lose its reference.

Only stable entry points are imported: ``tunelab.cli.app``, ``tunelab.spec`` (``ExperimentSpec``,
``load_spec``), ``tunelab.methods.available/get``, ``tunelab.tasks.available/get`` and
``tunelab.store.Store``. Types that have no stable entry point of their own (the costs, the run
status, the artifact's metadata, a report row) are reached through those, or found by class name
in the package's source, so that moving a module does not break the docs.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import html
import importlib
import inspect
import io
import re
import sqlite3
import sys
import tempfile
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"(?<!`)<!--\s*generated:\s*([\w-]+)\s*(.*?)\s*-->")
# What every benchmark results file must state about itself (matched case-insensitively).
PROVENANCE = {"date": r"\b20\d\d-\d\d-\d\d\b", "commit": r"\bcommit\b", "machine": r"\b(machine|device)\b",
              "command": r"\bcommands?\b"}


def _error(message: str) -> Exception:
    try:
        from mkdocs.exceptions import PluginError
    except ImportError:  # used outside mkdocs (tests/docs)
        return RuntimeError(message)
    return PluginError(message)


# --- mkdocs events -------------------------------------------------------------------------------


def on_config(config: Any, **_: Any) -> Any:
    """The worktree's tunelab, whatever else is installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_pre_build(**_: Any) -> None:
    """``mkdocs serve`` rebuilds in one process: read the notes again."""
    global _notes
    _notes = None


def on_page_markdown(markdown: str, page: Any = None, **_: Any) -> str:
    where = getattr(getattr(page, "file", None), "src_path", "a page")
    return expand(markdown, where)


def expand(markdown: str, where: str = "a page") -> str:
    """Every ``<!-- generated: NAME ARG -->`` line of ``markdown`` replaced by what it names."""

    def replace(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2)
        if name not in GENERATORS:
            raise _error(f"{where}: unknown generated part {name!r} (known: {', '.join(sorted(GENERATORS))})")
        return GENERATORS[name](arg).strip("\n")

    return MARKER.sub(replace, markdown)


# --- helpers -------------------------------------------------------------------------------------


def cell(text: Any) -> str:
    """Prose for a Markdown table cell, on one line: code spans (`x` or ``x``) kept as code, the rest
    escaped (HTML, emphasis, links), pipes escaped everywhere."""
    value = " ".join(str(text).split())
    out = []
    for index, part in enumerate(re.split(r"``?(.+?)``?", value)):
        if index % 2:
            out.append(code(part))
        else:
            part = html.escape(part, quote=False)
            out.append(re.sub(r"([*_\[\]|])", r"\\\1", part))
    return "".join(out)


def code(text: Any) -> str:
    """Inline code for a table cell (a pipe inside code still ends a cell in a table)."""
    value = " ".join(str(text).split()).replace("|", "\\|")
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def prose(text: str | None) -> str:
    """A docstring as Markdown paragraphs: lines within a paragraph joined, ``x`` as `x`."""
    if not text:
        return ""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", inspect.cleandoc(text))]
    return "\n\n".join(html.escape(p, quote=False).replace("``", "`") for p in paragraphs if p)


def type_name(annotation: Any) -> str:
    """An annotation as a reader writes it: ``int > 0 | None``, ``list[str]``, ``'median' | 'none'``."""
    if annotation is type(None) or annotation is None:
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *metadata = args
        return type_name(base) + "".join(_constraint(m) for m in metadata)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is list and len(args) == 1 and hasattr(args[0], "model_fields"):
        return "list of mappings"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        if hasattr(annotation, "model_fields") or dataclasses.is_dataclass(annotation):
            return "mapping"
        if issubclass(annotation, enum.Enum):
            return " | ".join(repr(member.value) for member in annotation)
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _constraint(metadata: Any) -> str:
    for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "length ≥")):
        value = getattr(metadata, attr, None)
        if value is not None:
            return f" {sign} {value}"
    return ""


def field_constraints(field: Any) -> str:
    return "".join(_constraint(m) for m in getattr(field, "metadata", []))


def source_comments(cls: type) -> dict[str, str]:
    """The comments the source writes beside (or just above) each attribute of ``cls``: the
    documentation of fields that have no ``description`` of their own, and of enum members."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins", "typing", "enum") or klass.__module__.startswith("pydantic"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        trailing: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and lines[token.start[0] - 1][: token.start[1]].strip():
                trailing[token.start[0]] = token.string
        node = ast.parse(source).body[0]
        for statement in getattr(node, "body", []):
            target = statement.target if isinstance(statement, ast.AnnAssign) else (
                statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None)
            if not isinstance(target, ast.Name):
                continue
            above, line = [], statement.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, lines[line - 1].strip())
                line -= 1
            beside = [trailing[n] for n in range(statement.lineno, (statement.end_lineno or 0) + 1) if n in trailing]
            if above and above[-1].rstrip().endswith(":") and beside:
                above = []  # a heading over a group of fields ("Where the time went:"), not this field's own
            parts = above + beside
            text = " ".join(p.lstrip("#").strip() for p in parts if not _pragma(p))
            if text:
                found[target.id] = text
    return found


def _pragma(comment: str) -> bool:
    return bool(re.match(r"#\s*(noqa|type:|pragma)", comment))


def find_class(name: str) -> type:
    """A class of the package by its name, wherever the package keeps it: the module that defines
    ``class NAME`` is found in the source and imported."""
    pattern = re.compile(rf"^class {re.escape(name)}\b", re.MULTILINE)
    for path in sorted((ROOT / "tunelab").rglob("*.py")):
        if pattern.search(path.read_text(encoding="utf-8")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            return getattr(importlib.import_module(module), name)
    raise _error(f"no class {name} in tunelab's source")


def _default(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if hasattr(value, "model_dump"):
        return "see below"
    if value is None:
        return code("null")
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, str):
        return code(value) if value else "empty"
    return code(value)


NOTES_FILE = Path(__file__).with_name("field_notes.yaml")
_notes: dict[str, str] | None = None
_used: set[str] = set()


def notes() -> dict[str, str]:
    """``field_notes.yaml``: descriptions for fields the code does not describe (yet)."""
    global _notes
    if _notes is None:
        import yaml

        _notes = {str(k): str(v) for k, v in (yaml.safe_load(NOTES_FILE.read_text(encoding="utf-8")) or {}).items()}
    return _notes


def describe(cls: type, name: str, own: str) -> str:
    """A field's description as table-cell Markdown: the code's own (escaped), else its note (written
    as Markdown); a note for a field the code describes is an error."""
    key = f"{cls.__name__}.{name}"
    note = notes().get(key)
    if note is not None:
        _used.add(key)
        if own:
            raise _error(f"{NOTES_FILE.name}: {key} is described in the code now ({own!r}): remove its note")
        return " ".join(note.split())
    return cell(own)


def check_notes() -> None:
    """Every note names a field some generated table showed."""
    unused = sorted(set(notes()) - _used)
    if unused:
        raise _error(f"{NOTES_FILE.name}: no generated table has the field(s) {', '.join(unused)}: "
                     "remove or rename their notes")


def on_post_build(**_: Any) -> None:
    check_notes()


def model_rows(model: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> list[list[str]]:
    """One row per field of a pydantic model: name, type, default, description."""
    comments = source_comments(model)
    rows = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        description = describe(model, name, field.description or comments.get(name, ""))
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = _default(field.default_factory())
        else:
            default = _default(field.default)
        kind = type_name(field.annotation) + field_constraints(field)
        rows.append([code(prefix + name), cell(kind), default, description])
    return rows


def dataclass_rows(cls: Any, prefix: str = "") -> list[list[str]]:
    comments = source_comments(cls)
    hints = typing.get_type_hints(cls)
    return [[code(prefix + f.name), cell(type_name(hints.get(f.name, f.type))),
             describe(cls, f.name, comments.get(f.name, ""))] for f in dataclasses.fields(cls)]


def _models_in(annotation: Any) -> list[type]:
    """The pydantic models an annotation holds (``TrainSpec``, ``GenerateSpec | None``...)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


# --- the CLI -------------------------------------------------------------------------------------


def cli(_: str) -> str:
    """Every command of the typer app, with its usage and options, as click itself describes them."""
    import typer

    from tunelab.cli import app

    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="tunelab")
    out = [prose(group.help), ""]
    out.append(table(["command", "what it does"],
                     [[f"[`tunelab {name}`](#tunelab-{name})", cell(_first_sentence(cmd.help))]
                      for name, cmd in group.commands.items()]))
    for name, cmd in group.commands.items():
        ctx = cmd.context_class(cmd, info_name=name, parent=root)
        usage = " ".join(cmd.get_usage(ctx).split())
        out += ["", f"## `tunelab {name}` {{#tunelab-{name}}}", "", prose(cmd.help), "", "```text", usage, "```", ""]
        rows = []
        for param in cmd.params:
            if getattr(param, "hidden", False):
                continue
            record = param.get_help_record(ctx)
            if record is None:
                continue
            names, text = record
            kind = "argument" if param.param_type_name == "argument" else "option"
            rows.append([code(names), kind, cell(text)])
        out.append(table(["name", "kind", "description"], rows) if rows else "No options.")
    return "\n".join(out)


def _first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    match = re.match(r"(.+?[.:])(\s|$)", text)
    return match.group(1).rstrip(":.") + "." if match else text


def cli_commands() -> dict[str, Any]:
    """The click command of each ``tunelab`` subcommand (also for tests/docs)."""
    import typer

    from tunelab.cli import app

    return dict(typer.main.get_command(app).commands)


# --- the experiment file -------------------------------------------------------------------------


def experiment(_: str) -> str:
    """The experiment file's keys, section by section (each nested section after its parent), from the
    pydantic schema."""
    from tunelab.spec import ExperimentSpec

    out: list[str] = []
    seen: set[type] = set()

    def section(prefix: str, model: type) -> None:
        if model in seen:
            return
        seen.add(model)
        out.extend([f"## {f'`{prefix.rstrip(chr(46))}`' if prefix else 'Top level'}", ""])
        if model.__doc__ and prefix:
            out.extend([prose(model.__doc__), ""])
        if model.__name__ == "MethodSpec":
            out.extend([_method_entry(), ""])
            return
        out.extend([table(["key", "type", "default", "description"], model_rows(model, prefix)), ""])
        for name, field in model.model_fields.items():
            for nested in _models_in(field.annotation):
                if nested.__name__ != "MethodOptions":
                    section(f"{prefix}{name}{'[]' if _is_list(field.annotation) else ''}.", nested)

    section("", ExperimentSpec)
    return "\n".join(out)


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list or any(_is_list(a) for a in typing.get_args(annotation)
                                                        if typing.get_origin(annotation) is not list)


def _method_entry() -> str:
    import tunelab.spec as spec

    tunable = ", ".join(f"`{k}`" for k in getattr(spec, "TUNABLE_TRAIN", ()))
    rows = [
        [code("name"), "str", "required", "the method, as [the methods reference](methods.md) names it"],
        [code("lr"), "float > 0", "the method's default for the task",
         "fixes the learning rate: used as given, not tuned"],
        [code("lr_grid"), "list[float]", "none", "the method's own learning-rate candidates (not with `lr`)"],
        [code("train"), "mapping", "none", f"the method's own training settings: {tunable}"],
        ["*any option*", "", "the option's default", "the method's options, in [the methods reference](methods.md)"],
    ]
    return ("Each entry of `methods` is a method's name (`lora`) or a mapping with its name and options "
            "(`{name: lora, r: 16}`); a comma-separated string (`full,lora`) is a list of names.\n\n"
            + table(["key", "type", "default", "description"], rows))


def defaults(arg: str) -> str:
    """The built-in default experiment of a task, as ``tunelab compare`` with no file runs it."""
    from tunelab.spec import load_spec

    spec = load_spec(None, {"task": arg or "classification"})
    sample = spec.data.sample
    sizes = ", ".join(f"{getattr(sample, k):,} {k}" for k in ("train", "validation", "test") if getattr(sample, k))
    epochs = spec.train.epochs or 1
    plural = "s" if epochs != 1 else ""
    budget = f"{spec.train.max_steps} steps" if spec.train.max_steps else f"{epochs:g} epoch{plural}"
    methods = ", ".join(f"`{m.name}`" for m in spec.methods)
    return (f"`{spec.model}` on `{spec.data.path}` ({sizes} examples), methods {methods}; "
            f"{budget} of batch {spec.train.batch_size}, at most {spec.train.max_length} tokens, validation every "
            f"{spec.train.eval_every} steps, seed{'s' if len(spec.seeds) > 1 else ''} "
            f"{', '.join(map(str, spec.seeds))}, work directory `{spec.workdir}`.")


# --- methods and tasks ---------------------------------------------------------------------------


def _lr(value: float) -> str:
    return f"{value:g}"


def _tasks_default_first() -> list[str]:
    """The registered tasks, the experiment's default task first."""
    import tunelab.tasks as tasks
    from tunelab.spec import ExperimentSpec

    default = ExperimentSpec.model_fields["task"].default
    return sorted(tasks.available(), key=lambda name: (name != default, name))


def methods(_: str) -> str:
    """Every registered method: what it trains, where, its options and default learning rates."""
    import tunelab.methods as registry

    names = registry.available()
    task_names = _tasks_default_first()
    out = [f"{len(names)} methods are registered. The default learning rate is the method's own unless the task "
           "has one of its own; `compare` tunes it for the budget unless an experiment fixes it "
           "([fair by default](../concepts/fair-by-default.md)).", ""]
    rows = []
    for name in names:
        cls = registry.get(name)
        rows.append([f"[`{name}`](#{name})", cell(cls.description),
                     ", ".join(f"`{t}`" for t in task_names if t in cls.tasks),
                     " / ".join(_lr(cls.default_lr(t)) if t in cls.tasks else "–" for t in task_names)])
    out.append(table(["method", "what it trains", "tasks", "default lr (" + " / ".join(task_names) + ")"], rows))
    for name in names:
        cls = registry.get(name)
        out += ["", f"## `{name}` {{#{name}}}", "", cell(cls.description)[:1].upper() + cell(cls.description)[1:]
                + ".", ""]
        if cls.__doc__ and cls.__doc__ is not registry.Method.__doc__:
            out += [prose(cls.__doc__), ""]
        facts = [["tasks", ", ".join(f"`{t}`" for t in task_names if t in cls.tasks)],
                 ["models", cell(cls.architectures)]]
        for task in task_names:
            if task in cls.tasks:
                facts.append([f"default lr, `{task}`",
                              f"{_lr(cls.default_lr(task))}: {cell(cls.default_lr_source(task))}"])
        facts.append(["sharded by `train.fsdp`", "yes" if getattr(cls, "shardable", False) else "no"])
        space = cls.search_space(cls.Options())
        facts.append(["`tunelab sweep` searches", "; ".join(f"`{k}` {_dimension(v)}" for k, v in space.items())])
        out += [table(["property", "value"], facts), ""]
        rows = model_rows(cls.Options, skip=("lr",))
        out.append(table(["option", "type", "default", "description"], rows) if rows else
                   "No options besides `lr`.")
    return "\n".join(out)


def _dimension(dimension: Any) -> str:
    described = dimension.describe() if hasattr(dimension, "describe") else {"value": dimension}
    if "choices" in described:
        return "∈ {" + ", ".join("random" if c is None else str(c) for c in described["choices"]) + "}"
    if "low" in described:
        low, high = described["low"], described["high"]
        scale = "log-uniform" if described.get("log") else "whole numbers" if described.get("integer") else "uniform"
        return f"{scale} over [{low:.3g}, {high:.3g}]"
    return f"fixed at {described.get('value')}"


def sweep_train_space(_: str) -> str:
    """The training settings every method's sweep searches, centred on the experiment's."""
    from tunelab.spec import dimensions as search
    from tunelab.spec import load_spec

    train = load_spec(None).train
    base = train.model_dump()
    rows = [[code(f"train.{k}"), cell(_dimension(v))] for k, v in search.train_space(base).items()]
    return (f"Around the default experiment's `train` (batch {train.batch_size}, warm-up {train.warmup_ratio}, "
            f"weight decay {train.weight_decay}):\n\n" + table(["setting", "searched"], rows))


def tasks_reference(_: str) -> str:
    import tunelab.methods as registry
    import tunelab.tasks as tasks

    out = []
    for name in _tasks_default_first():
        task = tasks.get(name)
        methods_for = [m for m in registry.available() if name in registry.get(m).tasks]
        metrics = ", ".join(f"`{m}` ({'higher' if up else 'lower'} is better)" for m, up in task.metrics.items())
        out += [f"## `{name}`", "", cell(task.description)[:1].upper() + cell(task.description)[1:] + ".", ""]
        doc = type(task).__doc__
        if doc and doc is not tasks.Task.__doc__:
            out += [prose(doc), ""]
        facts = [["`train.metric`", f"{metrics}; default `{task.default_metric}`"],
                 ["report columns", ", ".join(cell(title) for _, title, _ in task.columns)],
                 ["fewest validation examples to tune on", f"{task.min_validation}: {cell(task.min_validation_why)}"],
                 ["methods", ", ".join(f"[`{m}`](methods.md#{m})" for m in methods_for)],
                 ["peft task type", code(task.peft_task_type)]]
        out += [table(["property", "value"], facts), ""]
    return "\n".join(out)


def min_validation(arg: str) -> str:
    """The fewest validation examples a task ranks learning-rate candidates on."""
    import tunelab.tasks as tasks

    return str(tasks.get(arg).min_validation)


def method_source(arg: str) -> str:
    """The source file of a registered method, wherever the registry finds it."""
    import tunelab.methods as registry

    module = sys.modules[registry.get(arg).__module__]
    return f"```python\n{inspect.getsource(module).rstrip()}\n```"


def count(arg: str) -> str:
    import tunelab.methods as registry
    import tunelab.tasks as tasks

    counts: dict[str, Callable[[], int]] = {"methods": lambda: len(registry.available()),
                                            "tasks": lambda: len(tasks.available())}
    if arg not in counts:
        raise _error(f"generated: count {arg!r}: give one of {', '.join(counts)}")
    return str(counts[arg]())


# --- outputs -------------------------------------------------------------------------------------


def _run_result() -> Any:
    from tunelab.store import Store

    return typing.get_type_hints(Store.record)["result"]


def store_schema(_: str) -> str:
    """The store's tables as a fresh store creates them."""
    from tunelab.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        try:
            path = store.path
            tables = [row[0] for row in store.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
        finally:
            store.close()
        db = sqlite3.connect(path)
        out = [f"A store is the file `{path.name}` in the work directory (SQLite).", ""]
        for name in tables:
            columns = db.execute(f"PRAGMA table_info({name})").fetchall()
            keys = {row[3]: row[2] for row in db.execute(f"PRAGMA foreign_key_list({name})")}
            rows = [[code(c[1]), code(c[2]), "yes" if c[3] or c[5] else "", "primary key" if c[5] else
                     (f"→ `{keys[c[1]]}`" if c[1] in keys else "")] for c in columns]
            out += [f"### `{name}`", "", table(["column", "type", "not null", ""], rows), ""]
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        db.close()
    if version:
        out.append(f"The `meta` table holds `schema_version` = {version[0]}.")
    return "\n".join(out)


def costs(_: str) -> str:
    result = _run_result()
    model = result.model_fields["costs"].annotation
    return table(["cost", "type", "default", "what it is"], model_rows(model))


def run_status(_: str) -> str:
    status = _run_result().model_fields["status"].annotation
    comments = source_comments(status)
    return table(["status", "meaning"],
                 [[code(s.value), describe(status, s.name, comments.get(s.name, ""))] for s in status])


def artifact_meta(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("ArtifactMeta")))


def experiment_info(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("ExperimentInfo")))


def token_lengths(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("TokenLengths")))


def lr_choice(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("LrChoice")))


def candidate(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("Candidate")))


def curve(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("Curve")))


def run_spec(_: str) -> str:
    return table(["key", "type", "default", "what it is"], model_rows(find_class("RunSpec")))


def comparison_row(_: str) -> str:
    return table(["key", "type", "what it is"], dataclass_rows(find_class("MethodRow")))


def stat(_: str) -> str:
    return table(["key", "type", "what it is"], dataclass_rows(find_class("Stat")))


def generation_score(_: str) -> str:
    return table(["key", "type", "what it is"], dataclass_rows(find_class("Score")))


# --- benchmarks ----------------------------------------------------------------------------------


def bench(arg: str) -> str:
    """A benchmark's results file, its headings one level down, after checking its provenance."""
    path = ROOT / "bench" / "results" / arg
    if not arg or not path.is_file():
        raise _error(f"generated: bench {arg!r}: no such results file in bench/results")
    text = path.read_text(encoding="utf-8")
    missing = [what for what, pattern in PROVENANCE.items() if not re.search(pattern, text, re.IGNORECASE)]
    if missing:
        raise _error(f"bench/results/{arg} does not state its {', '.join(missing)}: a results file carries its "
                     "own provenance (date, commit, machine, command)")
    body = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.MULTILINE)
    return f"*The results file `bench/results/{arg}`, as the benchmark wrote it:*\n\n{body}"


def bench_table(arg: str) -> str:
    """The first table of a benchmark's results file, as it stands there."""
    path = ROOT / "bench" / "results" / arg
    if not arg or not path.is_file():
        raise _error(f"generated: bench-table {arg!r}: no such results file in bench/results")
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise _error(f"bench/results/{arg} has no table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


GENERATORS: dict[str, Callable[[str], str]] = {
    "cli": cli,
    "experiment": experiment,
    "defaults": defaults,
    "methods": methods,
    "sweep-train-space": sweep_train_space,
    "tasks": tasks_reference,
    "count": count,
    "method-source": method_source,
    "min-validation": min_validation,
    "store-schema": store_schema,
    "costs": costs,
    "run-status": run_status,
    "artifact-meta": artifact_meta,
    "experiment-info": experiment_info,
    "lr-choice": lr_choice,
    "token-lengths": token_lengths,
    "candidate": candidate,
    "curve": curve,
    "comparison-row": comparison_row,
    "run-spec": run_spec,
    "stat": stat,
    "generation-score": generation_score,
    "bench": bench,
    "bench-table": bench_table,
}
