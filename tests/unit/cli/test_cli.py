"""The CLI answers at once: listing methods and help never import torch or transformers."""

from __future__ import annotations

import subprocess
import sys


def test_help_and_methods_do_not_import_torch():
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tunelab.cli import app\n"
        "runner = CliRunner()\n"
        "for args in (['--help'], ['methods'], ['compare', '--help'], ['export', '--help']):\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(runner.invoke(app, ['methods']).output)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")
    for name in ("full", "llrd", "freeze", "head", "lora", "prompt-tuning"):
        assert name in out.stdout


def test_bad_executor_flags_get_one_line_and_exit_2(tmp_path):
    cases = ((["--executor", "nope"], "error: unknown executor 'nope' (use local or ray)"),
             (["--address", "127.0.0.1:6379"], "error: --address goes with --executor ray"))
    for args, expected in cases:
        for command in ("compare", "sweep"):
            out = subprocess.run([sys.executable, "-m", "tunelab", command, "--workdir", str(tmp_path), *args],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 2 and out.stderr.strip().splitlines() == [expected], out.stderr
            assert not (tmp_path / "tunelab.db").exists()


def test_a_warning_note_is_shown_as_a_warning(capsys):
    from tunelab.cli.render import print_notes

    print_notes(["made a validation split", "warning: train: 10 of 40 examples (25 %) are longer than max_length 32"])
    out = capsys.readouterr().out
    assert "note: made a validation split" in out
    assert "warning: train: 10 of 40 examples" in out and "note: warning" not in out
