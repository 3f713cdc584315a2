"""A model's fingerprint is its content: config, tokenizer files, chat template and weights, read
in blocks and cached by what the file system says of each file; for a hub id, the commit it
resolves to. Tiny models copied into tmp_path: the built-in folders are never touched."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tunelab import tasks
from tunelab.models import resolve_model


@pytest.fixture
def bert(tiny_bert_model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bert_model, tmp_path / "bert"))


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Digests cached under tmp_path, not in the user's cache."""
    monkeypatch.setenv("TUNELAB_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fingerprint(folder: Path, task: str = "classification") -> str:
    return resolve_model(str(folder), task=tasks.get(task)).fingerprint


def _flip_a_byte_keeping_the_times(path: Path) -> None:
    """What ``cp -p`` over an existing file does: new bytes in the same file (same inode and size),
    and the old modification time put back."""
    before = path.stat()
    with open(path, "r+b") as f:
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_turning_off_lowercasing_in_the_tokenizer_changes_the_fingerprint(bert):
    before = _fingerprint(bert)
    tokenizer = json.loads((bert / "tokenizer.json").read_text())
    assert tokenizer["normalizer"]["lowercase"] is True
    tokenizer["normalizer"]["lowercase"] = False
    (bert / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert _fingerprint(bert) != before


def test_editing_the_chat_template_changes_the_fingerprint(tiny_llama_model, tmp_path):
    llama = Path(shutil.copytree(tiny_llama_model, tmp_path / "llama"))
    before = _fingerprint(llama, "causal-lm")
    template = next(p for p in (llama / "chat_template.jinja", llama / "tokenizer_config.json") if p.is_file())
    template.write_text(template.read_text().replace("assistant", "helper"))
    assert _fingerprint(llama, "causal-lm") != before


def test_new_weight_bytes_with_the_old_size_and_mtime_change_the_fingerprint(bert):
    before = _fingerprint(bert)
    _flip_a_byte_keeping_the_times(bert / "model.safetensors")
    assert _fingerprint(bert) != before


def test_a_cached_digest_is_not_trusted_once_the_file_changed(bert, monkeypatch):
    """Cached by (path, size, mtime, inode) and the change time, which no tool can put back: an
    edit in place with the mtime restored is read again."""
    from tunelab import digests

    monkeypatch.setattr(digests, "SETTLED_SECONDS", 0.0)  # cache even these files, written just now
    before = _fingerprint(bert)
    time.sleep(0.05)  # past the file system's clock tick, so that the change time moves
    _flip_a_byte_keeping_the_times(bert / "model.safetensors")
    assert _fingerprint(bert) != before


def test_a_copy_elsewhere_has_the_same_fingerprint(bert, tmp_path):
    """Where a model is is not what it is; a plain copy (new mtimes and inodes) is the same model."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(bert, copy, copy_function=shutil.copyfile)
    assert _fingerprint(copy) == _fingerprint(bert)


def test_files_from_pretrained_does_not_read_leave_the_fingerprint_alone(bert):
    before = _fingerprint(bert)
    (bert / "README.md").write_text("# a model card\n")
    (bert / "onnx").mkdir()
    (bert / "onnx" / "model.onnx").write_bytes(b"\0" * 64)
    assert _fingerprint(bert) == before


def test_a_settled_file_is_read_once_and_then_found_in_the_cache(bert, own_cache, monkeypatch):
    from tunelab import digests

    monkeypatch.setattr(digests, "SETTLED_SECONDS", 0.0)
    read = []
    real = digests.hash_file
    monkeypatch.setattr(digests, "hash_file", lambda path: read.append(Path(path).name) or real(path))
    first = _fingerprint(bert)
    assert "model.safetensors" in read and "tokenizer.json" in read and "config.json" in read
    read.clear()
    assert _fingerprint(bert) == first
    assert read == []
    cached = json.loads((own_cache / digests.CACHE_FILE).read_text())
    assert str((bert / "model.safetensors").resolve()) in cached


def test_a_file_written_just_now_is_not_cached(bert, own_cache):
    """A file changed within the file system's clock tick could change again with the same times:
    its digest is not kept until it has settled."""
    from tunelab import digests

    digests.file_digests([bert / "model.safetensors"])
    cached = own_cache / digests.CACHE_FILE
    assert not cached.exists() or str((bert / "model.safetensors").resolve()) not in json.loads(cached.read_text())


def test_an_unreadable_cache_is_ignored(bert, own_cache, monkeypatch):
    from tunelab import digests

    monkeypatch.setattr(digests, "SETTLED_SECONDS", 0.0)
    own_cache.mkdir(parents=True)
    (own_cache / digests.CACHE_FILE).write_text("{not json")
    assert digests.file_digests([bert / "config.json"]) == [digests.hash_file(bert / "config.json")]
    json.loads((own_cache / digests.CACHE_FILE).read_text())  # written again, whole


def test_a_hub_models_fingerprint_follows_its_revision(bert, monkeypatch):
    from tunelab import models

    config = models.load_config(str(bert))
    monkeypatch.setattr(models, "hub_revision", lambda ref: "a" * 40)
    first = models.fingerprint("someone/model", config)
    monkeypatch.setattr(models, "hub_revision", lambda ref: "b" * 40)
    assert models.fingerprint("someone/model", config) != first


def test_offline_the_revision_is_the_cached_snapshots(tmp_path, monkeypatch):
    """Offline, the commit is that of the snapshot ``from_pretrained`` reads: the one refs/main names."""
    from huggingface_hub import constants

    from tunelab.models import hub_revision

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--model"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_revision("someone/model") == commit
    assert hub_revision("someone/other") is None


def test_a_folders_fingerprint_does_not_depend_on_the_transformers_that_reads_it(bert, monkeypatch):
    """An artifact trained under one transformers is predicted with under another: its base model must
    still be the same model (the parsed config carries the reading library's version and defaults)."""
    import transformers.configuration_utils as configuration

    before = _fingerprint(bert)
    monkeypatch.setattr(configuration, "__version__", "99.0.0")
    assert _fingerprint(bert) == before
