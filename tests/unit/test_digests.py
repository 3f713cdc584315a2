"""Files' content digests, which name models and data: read in blocks, cached by what the file system
says of each file, and a file that cannot be read is one line, not a traceback."""

from __future__ import annotations

import hashlib

import pytest

from tunelab.digests import file_digests
from tunelab.errors import TunelabError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_MODEL_CACHE", str(tmp_path / "cache"))


def test_a_digest_is_the_files_sha256(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01" * 3_000_000)  # more than one block
    assert file_digests([path]) == [hashlib.sha256(path.read_bytes()).hexdigest()]


def test_a_file_that_cannot_be_read_is_one_line(tmp_path):
    with pytest.raises(TunelabError, match=r"^cannot read .*gone\.safetensors: No such file or directory"):
        file_digests([tmp_path / "gone.safetensors"])
