"""The docs against the code: every experiment they show parses, every `tunelab` command they show exists
with the flags shown, every Python example compiles and its tunelab imports resolve, every generated part
renders, and what the README copies (a result table, a count, its links) matches its source."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)"
                   r"^(?P=indent)(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$', re.MULTILINE)
SHELLS = {"bash", "sh", "shell", "console", ""}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        source = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(source):
            body = SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"), match.group("body"))
            found.append(Block(page, source.count("\n", 0, match.start()) + 1, match.group("lang").lower(), body))
    return found


BLOCKS = _blocks()


def _of(langs: set[str]) -> list[Block]:
    return [b for b in BLOCKS if b.lang in langs]


def test_the_docs_have_the_examples_these_tests_check():
    assert len(_of({"yaml"})) >= 6 and len(_of(SHELLS)) >= 15 and len(_of({"python"})) >= 5


# --- experiments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of({"yaml", "yml"}), ids=lambda b: b.where)
def test_every_yaml_example_is_an_experiment(block, tmp_path, monkeypatch):
    """Every YAML block is an experiment `tunelab compare` accepts (its schema: data is not read)."""
    from tunelab.spec import load_spec

    raw = yaml.safe_load(block.text)
    assert isinstance(raw, dict), f"{block.where}: not a mapping of experiment keys"
    path = tmp_path / "experiment.yaml"
    path.write_text(block.text, encoding="utf-8")
    monkeypatch.chdir(ROOT)  # the examples' relative paths are the repository root's
    assert load_spec(path).methods


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    where: str
    words: tuple[str, ...]
    whole: bool  # from a code block (a command to run) rather than a mention in a sentence


def _commands_in(text: str, where: str, whole: bool) -> list[Command]:
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)
        if "tunelab" not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError as err:
            raise AssertionError(f"{where}: cannot read {line!r} as a shell line ({err})") from None
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|"):  # the end of one command of the line
                if command:
                    found.append(command)
                command = []
            else:
                command.append(token)
    commands = []
    for words in found:
        for index, word in enumerate(words):
            if word == "tunelab" or word.endswith("/tunelab"):
                commands.append(Command(where, tuple(words[index + 1:]), whole))
                break
            if word == "-m" and index + 1 < len(words) and words[index + 1] == "tunelab":
                commands.append(Command(where, tuple(words[index + 2:]), whole))
                break
    return commands


def _all_commands() -> list[Command]:
    commands = []
    for block in _of(SHELLS):
        commands += _commands_in(block.text, block.where, whole=True)
    for page in PAGES:
        prose = FENCE.sub("", page.read_text(encoding="utf-8"))
        for match in re.finditer(r"(?<!`)`(tunelab(?: [^`]+)?)`(?!`)", prose):
            commands += _commands_in(match.group(1), f"{page.relative_to(ROOT)} (`{match.group(1)}`)", whole=False)
    return commands


COMMANDS = _all_commands()


def test_the_docs_show_every_command():
    from tunelab.cli import app  # noqa: F401  (the app must import)

    shown = {c.words[0] for c in COMMANDS if c.words and not c.words[0].startswith("-")}
    assert set(_click_commands()) <= shown, f"never shown: {set(_click_commands()) - shown}"


def _click_commands() -> dict:
    import typer

    from tunelab.cli import app

    return dict(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.where}: tunelab {' '.join(c.words)}"[:150])
def test_every_command_shown_exists_with_the_flags_shown(command):
    commands = _click_commands()
    words = list(command.words)
    if not words or words[0] in ("--help", "-h"):
        return
    name = words.pop(0)
    if name.isupper():  # a placeholder: `tunelab COMMAND --help`
        assert words in ([], ["--help"]), command
        return
    assert name in commands, f"{command.where}: no command `tunelab {name}` (there are {', '.join(commands)})"
    cmd = commands[name]
    options = {opt: param for param in cmd.params if param.param_type_name == "option"
               for opt in [*param.opts, *param.secondary_opts]}
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    positional = 0
    while words:
        word = words.pop(0)
        if word.startswith("--") or (word.startswith("-") and len(word) == 2):
            flag, has_value = word.split("=", 1)[0], "=" in word
            if flag in ("--help", "-h"):
                continue
            assert flag in options, f"{command.where}: `tunelab {name}` has no option {flag}"
            param = options[flag]
            if not (getattr(param, "is_flag", False) or has_value):
                assert words, f"{command.where}: {flag} needs a value"
                words.pop(0)
        else:
            positional += 1
    accepts = float("inf") if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments)
    assert positional <= accepts, f"{command.where}: `tunelab {name}` takes {accepts} argument(s), not {positional}"
    if command.whole:
        required = sum(max(a.nargs, 1) for a in arguments if a.required)
        assert positional >= required, f"{command.where}: `tunelab {name}` needs {required} argument(s)"


# --- Python --------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of({"python", "py"}), ids=lambda b: b.where)
def test_every_python_example_compiles_and_its_tunelab_imports_resolve(block):
    tree = compile(block.text, block.where, "exec", ast.PyCF_ONLY_AST)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tunelab":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.where}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tunelab":
                    importlib.import_module(alias.name)


# --- the generated parts -------------------------------------------------------------------------


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_generated_part_of_every_page_renders():
    hook = _hook()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        source = page.read_text(encoding="utf-8")
        for match in hook.MARKER.finditer(source):
            assert hook.expand(match.group(0), str(page)).strip(), f"{page}: {match.group(0)} renders nothing"
    hook.check_notes()  # every note in field_notes.yaml was used, none for a field the code describes


def test_the_references_cover_every_command_method_and_task():
    import tunelab.methods as methods
    import tunelab.tasks as tasks

    hook = _hook()
    cli, reference, task_reference = hook.cli(""), hook.methods(""), hook.tasks_reference("")
    for name in _click_commands():
        assert f"## `tunelab {name}`" in cli
    for name in methods.available():
        assert f"## `{name}`" in reference
    for name in tasks.available():
        assert f"## `{name}`" in task_reference


def test_every_benchmark_results_file_has_its_page_and_its_provenance():
    hook = _hook()
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "benchmarks").glob("*.md"))
    for results in sorted((ROOT / "bench" / "results").glob("*.md")):
        assert f"<!-- generated: bench {results.name} -->" in pages, f"{results.name} has no benchmark page"
        hook.bench(results.name)  # refuses a file without its date, commit, machine and command


# --- what the README copies ----------------------------------------------------------------------


def _table(text: str, after: str = "") -> list[dict[str, str]]:
    lines = text[text.index(after):].splitlines() if after else text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def test_the_readme_result_table_is_the_results_file_s():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    source = re.search(r"\[`(bench/results/[\w.-]+\.md)`\]", readme)
    assert source, "the README's table names its results file"
    measured = {row["method"]: row for row in _table((ROOT / source.group(1)).read_text(encoding="utf-8"))}
    shown = _table(readme, "## What it measures")
    assert shown
    for row in shown:
        for column, value in row.items():
            assert measured[row["method"]][column] == value, (row["method"], column)


def test_the_readme_counts_methods_as_the_registry_does():
    import tunelab.methods as methods

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for count in re.findall(r"(\d+) methods", readme):
        assert int(count) == len(methods.available())


def test_the_readme_links_to_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), target


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_the_estimate_guide_cites_numbers_its_results_files_hold():
    guide = (ROOT / "docs" / "guides" / "estimate-recommend.md").read_text(encoding="utf-8")
    section = guide[guide.index("## How close the estimates are"):guide.index("## A 7B Llama")]
    results = "".join((ROOT / "bench" / "results" / name).read_text(encoding="utf-8")
                      for name in ("estimate-cpu.md", "estimate-cpu-causal.md"))
    cited = re.findall(r"\d+\.\d+ %", section)
    assert cited
    for number in cited:
        assert number in results, number
