"""An artifact reloads where it was trained and where it was copied to, and a bad or moved one is
refused in one line: a truncated ``tunelab.json``, a base model that is gone or is not the one it
was trained on, labels that do not fit what trained. Artifacts of the tiny BERT, built untrained
(what is saved, not what it learnt, is what these tests are about)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunelab import artifact as artifacts
from tunelab.errors import TunelabError
from tunelab.models import model_folder, resolve_model
from tunelab.predict import Classifier
from tunelab.run import session as runner


def _saved(run, folder: Path) -> Path:
    session = runner.build(run)
    return runner.save_artifact(session.trainer.model, session.trainer.processing_class, run, folder)


@pytest.fixture(scope="module")
def saved(tiny_runs, tmp_path_factory):
    """``method -> artifact folder`` of the tiny BERT on SST-2, each saved once; tests break copies."""
    made: dict[str, Path] = {}

    def artifact(method: str) -> Path:
        if method not in made:
            (run,) = tiny_runs([method])
            made[method] = _saved(run, tmp_path_factory.mktemp(method) / "artifact")
        return made[method]

    return artifact


def _copy(saved_artifact: Path, tmp_path: Path, **meta: object) -> Path:
    """A copy of an artifact, its tunelab.json fields replaced by ``meta``."""
    copy = Path(shutil.copytree(saved_artifact, tmp_path / "artifact"))
    path = copy / artifacts.META_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **meta}))
    return copy


def _one_line(raised: pytest.ExceptionInfo[TunelabError]) -> str:
    text = str(raised.value)
    assert len(text.splitlines()) == 1, text
    return text


def test_a_truncated_meta_is_one_line(saved, tmp_path):
    copy = _copy(saved("head"), tmp_path)
    meta = copy / artifacts.META_FILE
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(TunelabError, match=r"tunelab.json cannot be read") as raised:
        Classifier.load(copy)
    _one_line(raised)
    meta.write_text(json.dumps({"task": "classification"}))  # whole JSON, but not an artifact's
    with pytest.raises(TunelabError, match=r"tunelab.json cannot be read: method: Field required"):
        artifacts.read_meta(copy)


def test_a_base_model_that_is_gone_is_one_line(saved, tmp_path):
    copy = _copy(saved("head"), tmp_path, base_model=str(tmp_path / "gone"))
    with pytest.raises(TunelabError, match=rf"base model {tmp_path / 'gone'} of .* cannot be loaded") as raised:
        Classifier.load(copy)
    assert "does not exist" in _one_line(raised) and "base_model in tunelab.json" in str(raised.value)


@pytest.mark.parametrize("method", ["head", "lora", "full"])
def test_labels_that_do_not_fit_what_trained_are_one_line(saved, tmp_path, method):
    copy = _copy(saved(method), tmp_path, labels=["neg", "pos", "neutral"])
    with pytest.raises(TunelabError, match="does not fit .* with the 3 labels of its tunelab.json") as raised:
        Classifier.load(copy)
    _one_line(raised)


def test_a_base_model_whose_content_changed_is_refused(tiny_runs, tmp_path):
    """Trained on a copy of the tiny BERT; the copy changed since (here its config): refused, rather
    than the trained tensors loaded onto weights they were not trained with."""
    (run,) = tiny_runs(["head"])
    base = Path(shutil.copytree(run.model_path, tmp_path / "base"))
    fingerprint = resolve_model(str(base)).fingerprint
    artifact = _saved(run.model_copy(update={"model_path": str(base), "model_fingerprint": fingerprint}),
                      tmp_path / "artifact")
    assert artifacts.read_meta(artifact).base_fingerprint == fingerprint
    assert len(Classifier.load(artifact).predict(["a gorgeous movie"])) == 1  # loads while unchanged
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    with pytest.raises(TunelabError, match=f"base model {base} is not the model .* was trained on") as raised:
        Classifier.load(artifact)
    _one_line(raised)


def test_an_artifact_from_before_the_fingerprint_still_loads(saved, tmp_path):
    copy = _copy(saved("head"), tmp_path)
    meta = json.loads((copy / artifacts.META_FILE).read_text())
    meta.pop("base_fingerprint", None)
    (copy / artifacts.META_FILE).write_text(json.dumps(meta))
    assert artifacts.read_meta(copy).base_fingerprint is None
    assert len(Classifier.load(copy).predict(["a gorgeous movie"])) == 1


def test_a_built_in_base_model_is_stored_by_name_and_found_again(minilm_runs, tmp_path):
    """Not the path into this environment's site-packages, which another machine does not have."""
    (run,) = minilm_runs(["head"])
    assert run.model_path == model_folder("builtin:minilm")
    artifact = _saved(run, tmp_path / "artifact")
    meta = artifacts.read_meta(artifact)
    assert meta.base_model == "builtin:minilm" and meta.base_fingerprint == run.model_fingerprint
    assert len(Classifier.load(artifact).predict(["a gorgeous movie"])) == 1


def test_the_built_in_decoder_is_named_by_its_dequantised_folder():
    from tunelab.models import builtin_name

    assert builtin_name(model_folder("builtin:smollm2")) == "builtin:smollm2"
    assert builtin_name(str(Path(model_folder("builtin:minilm")).parent)) is None


def test_an_unchanged_copy_of_the_base_model_elsewhere_is_the_same_model(tiny_runs, tmp_path):
    """A model is named by its content, not where it sits: an artifact whose base model was copied
    or moved (as to another machine) loads onto the copy."""
    (run,) = tiny_runs(["head"])
    artifact = _saved(run, tmp_path / "artifact")
    moved = Path(shutil.copytree(run.model_path, tmp_path / "elsewhere" / "base"))
    meta = json.loads((artifact / artifacts.META_FILE).read_text())
    (artifact / artifacts.META_FILE).write_text(json.dumps({**meta, "base_model": str(moved)}))
    assert len(Classifier.load(artifact).predict(["a gorgeous movie"])) == 1
