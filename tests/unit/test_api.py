"""The public API: every name ``tunelab`` exports resolves, lazily (``import tunelab`` pulls in
neither torch nor the training stack), and a type checker sees real types, not ``Any``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT

import tunelab

USER_SCRIPT = textwrap.dedent('''
    from pathlib import Path

    import tunelab

    spec: tunelab.ExperimentSpec = tunelab.load_spec(None, {"methods": "lora,head"})
    executor: tunelab.Executor = tunelab.LocalExecutor(gpus_per_run=1)


    class Quiet(tunelab.Listener):
        pass


    def report(comparison: tunelab.Comparison) -> list[str]:
        return [row.label for row in comparison.rows]


    def run() -> None:
        result = tunelab.compare(spec, executor=executor, listener=Quiet())
        labels: list[str] = report(result)
        html: Path | None = result.html_path
        estimates = tunelab.estimate("builtin:minilm", "classification", ["lora"], setup=tunelab.Setup(batch_size=8))
        params: int = estimates[0].trainable_params
        model = tunelab.load_artifact("runs/x/artifact")
        exported: tunelab.Exported = tunelab.export("lora", Path("exports/lora"), dtype="bf16", merge=None)
        size: int = exported.bytes
        swept: tunelab.SweepResult = tunelab.sweep(spec, trials=2)
        print(labels, html, params, model, swept.comparison, size)
        try:
            tunelab.make_executor("ray", gpus_per_run=0.5)
        except tunelab.TunelabError as err:
            print(err.hint)
''')


def test_every_exported_name_resolves_without_importing_torch():
    probe = ("import sys, tunelab\n"
             "assert 'torch' not in sys.modules\n"
             "missing = [n for n in tunelab.__all__ if getattr(tunelab, n, None) is None]\n"
             "print(missing, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "[]", out
    assert len(tunelab.__all__) == len(set(tunelab.__all__))


MYPY_CONFIG = f"""[mypy]
mypy_path = {ROOT}
plugins = pydantic.mypy
strict = True
ignore_missing_imports = True
[mypy-torch.*,transformers.*,datasets.*,peft.*,accelerate.*,optuna.*,ray.*,numpy.*,scipy.*,pandas.*,plotly.*]
follow_imports = skip
[mypy-tunelab.*]
follow_imports = silent
"""


def test_a_type_checker_sees_the_public_types(tmp_path):
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    # and it is checking: a wrong type is caught, so the names are not Any
    (tmp_path / "wrong.py").write_text("import tunelab\n"
                                       "labels: int = tunelab.compare(tunelab.load_spec(None, {})).rows\n")
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir",
                          str(tmp_path / "cache"), "user.py", "wrong.py"], capture_output=True, text=True,
                         cwd=tmp_path).stdout
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [line.split(":")[0] for line in errors] == ["wrong.py"], out
    assert "Incompatible types in assignment" in errors[0], out
