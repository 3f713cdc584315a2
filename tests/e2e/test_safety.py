"""Trust comes from the person running the command, never from a file; reading never writes."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import tiny_spec, tunelab

from tunelab.run import session as runner


@pytest.fixture(scope="module")
def full_artifact(tmp_path_factory):
    """A real artifact holding the whole model and its config (full fine-tuning saves it all)."""
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    workdir = tmp_path_factory.mktemp("safety")
    (run,) = prepare(build_spec(tiny_spec(workdir, ["full"], max_steps=2)))[2]
    return runner.train(run).artifact


def test_an_artifact_cannot_turn_on_remote_code_for_itself(full_artifact, tmp_path):
    """A handed-over artifact whose metadata asks for trust_remote_code and whose config maps to
    code in the folder: loading it must not run that code unless the user passes the flag."""
    from tunelab.predict import Classifier

    planted = tmp_path / "artifact"
    shutil.copytree(full_artifact, planted)
    marker = tmp_path / "pwned"
    (planted / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                     "from transformers import BertForSequenceClassification as Model\n")
    config = json.loads((planted / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.Model", "AutoModelForSequenceClassification": "evil.Model"}
    (planted / "config.json").write_text(json.dumps(config))
    meta = json.loads((planted / "tunelab.json").read_text())
    (planted / "tunelab.json").write_text(json.dumps({**meta, "trust_remote_code": True}))

    labels = Classifier.load(planted).predict(["a gorgeous, witty movie"])
    assert labels[0] in meta["labels"] and not marker.exists()
    out = tunelab("predict", str(planted), "a gorgeous, witty movie")
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def test_listing_and_reporting_never_write_to_the_store(tmp_path):
    import yaml

    spec = tiny_spec(tmp_path / "work", ["head"], max_steps=2)
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert tunelab("compare", str(path)).returncode == 0
    store = tmp_path / "work" / "tunelab.db"
    import sqlite3

    with sqlite3.connect(store) as db:  # as a tunelab of schema 1 left it: a read must not upgrade it
        db.execute("ALTER TABLE experiments DROP COLUMN info")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    before = store.read_bytes()
    for command in ("runs", "report"):
        out = tunelab(command, "--workdir", str(tmp_path / "work"))
        assert out.returncode == 0 and "head" in out.stdout, out.stderr
    assert store.read_bytes() == before
    wal = store.with_name("tunelab.db-wal")  # SQLite's read-only WAL index may appear; no data may
    assert not wal.exists() or wal.stat().st_size == 0


def test_user_strings_print_as_themselves_not_as_terminal_markup(tmp_path):
    """Rich reads `[bold]` and `[/x]` as markup (the second one as an error): user strings are text."""
    import yaml

    methods = [{"name": "prompt-tuning", "init_text": "[/x] closing"}, {"name": "prompt-tuning", "init_text": "[bold]b"}]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", methods, max_steps=2)))
    out = tunelab("compare", str(path))
    assert out.returncode == 0, out.stderr
    assert "init_text=[/x] closing" in out.stdout and "init_text=[bold]b" in out.stdout
    markdown = (tmp_path / "work" / "comparison.md").read_text()
    assert "init\\_text=\\[/x\\] closing" in markdown
