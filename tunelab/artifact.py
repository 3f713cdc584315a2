"""The artifact format, shared by the worker (``run.outputs``, which writes it) and ``predict`` (which reads it).

An artifact folder (``<run>/artifact``, a link to the version the store records) holds what the
method trained, the tokenizer, and ``tunelab.json``: the method, the base model, the labels and
the settings that prediction must repeat (``max_length``). What the method trained is one of:

- a peft adapter (``adapter_config.json``), loaded on top of the base model;
- the tensors that trained, alone (``trained.safetensors``), when the method trained part of the
  model without peft (``head``, ``bitfit``, ``freeze``): loaded into the base model, so that the
  artifact's size is what the method changed (770 parameters for ``head``, not 87 MB);
- the whole model, as ``save_pretrained`` writes it, when every parameter trained.

Nothing in it grants trust: whether remote code may run is for the person loading it to say.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from tunelab.errors import TunelabError

META_FILE = "tunelab.json"
LINK = "artifact"  # <run>/artifact: the current version, for people and `tunelab predict`
ADAPTER_CONFIG = "adapter_config.json"
TRAINED_FILE = "trained.safetensors"
# Set by ``tunelab.models`` on a loaded model: the parameters its checkpoint did not hold (a
# classifier's new head), initialised at random, so that a partial artifact keeps them too.
FRESH_ATTRIBUTE = "tunelab_fresh_parameters"
# Set by a method whose initialisation changes the base weights (PiSSA, OLoRA): a folder holding the
# adapter as initialised, from which peft converts the trained one into a LoRA on the unchanged base.
INITIAL_ADAPTER_ATTRIBUTE = "tunelab_initial_adapter"


class ArtifactMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")  # artifacts from before keep loading

    task: str = "classification"
    method: str
    # where an adapter's base weights come from: builtin:<name> for a built-in model (found again in
    # whichever environment loads it), else a folder or a hub id
    base_model: str
    base_fingerprint: str | None = None  # the base model's, as trained on (None: an artifact from before)
    labels: list[str] = []
    pairs: bool = False  # classification: each input is a pair of texts, tokenised together
    run_key: str
    options: dict[str, Any] = {}
    max_length: int = 512


def new_version(run_dir: Path) -> Path:
    """Where a new artifact of a run goes: a folder of its own, so that the one the store points at
    stays whole until the store points at the new one (``publish``)."""
    return Path(run_dir) / f"{LINK}-{time.time_ns()}"


def save(model: Any, tokenizer: Any, meta: ArtifactMeta, target: Path,
         state_dict: dict[str, Any] | None = None) -> Path:
    """Weights, tokenizer and metadata, written aside and then renamed into place, so that a kill
    leaves either no artifact or a whole one. ``state_dict``: a whole model's weights gathered from
    the shards of a model FSDP trained (whose own parameters are each process's shard)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if _partly_trained(model):
        from safetensors.torch import save_file

        tmp.mkdir(parents=True)
        fresh: frozenset[str] = getattr(model, FRESH_ATTRIBUTE, frozenset())
        save_file({name: param.detach().cpu().contiguous() for name, param in model.named_parameters()
                   if param.requires_grad or name in fresh}, str(tmp / TRAINED_FILE))
    elif initial := getattr(model, INITIAL_ADAPTER_ATTRIBUTE, None):
        model.save_pretrained(str(tmp), path_initial_model_for_weight_conversion=initial)
        _restore_modules_to_save(model, tmp)
    else:
        model.save_pretrained(str(tmp), state_dict=state_dict)
    tokenizer.save_pretrained(str(tmp))
    (tmp / META_FILE).write_text(meta.model_dump_json(indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def publish(run_dir: Path, current: Path | None) -> None:
    """After the store has recorded ``current`` (or no artifact): ``<run>/artifact`` points at it,
    swapped in one rename, and every other version or half-written folder is removed. A kill at
    any point leaves the store's artifact whole; leftovers are removed by the next publish."""
    run_dir = Path(run_dir)
    link = run_dir / LINK
    if current is not None:
        tmp = run_dir / f"{LINK}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(Path(current).name, tmp)
        if link.is_dir() and not link.is_symlink():  # a folder from before versions: make room
            shutil.rmtree(link)
        os.replace(tmp, link)
    for old in run_dir.glob(f"{LINK}-*"):
        if current is None or old.name != Path(current).name:
            shutil.rmtree(old, ignore_errors=True)
    if current is None and link.is_symlink():
        link.unlink()


def read_meta(artifact: Path) -> ArtifactMeta:
    """The artifact's ``tunelab.json``, or one line saying why it cannot be read."""
    path = Path(artifact) / META_FILE
    if not path.is_file():
        raise TunelabError(f"{artifact} is not a tunelab artifact (no {META_FILE})",
                           "give a runs/<key>/artifact folder")
    try:
        return ArtifactMeta.model_validate_json(path.read_bytes())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TunelabError(f"{path} cannot be read: {where + ': ' if where else ''}{first['msg']}",
                           "copy the artifact again from its run folder (runs/<key>/artifact)") from None


def needs_base(artifact: Path) -> bool:
    """Whether the artifact loads on top of its base model (an adapter, or the tensors that trained)
    rather than holding the whole model."""
    return (Path(artifact) / ADAPTER_CONFIG).is_file() or (Path(artifact) / TRAINED_FILE).is_file()


def _restore_modules_to_save(model: Any, folder: Path) -> None:
    """peft 0.21's conversion keeps the LoRA tensors alone and drops the rest of the adapter (a
    classifier's new head, ``modules_to_save``): put it back beside them."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    path = str(folder / "adapter_model.safetensors")
    saved = load_file(path)
    dropped = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()
               if "lora_" not in k and k not in saved}
    if dropped:
        save_file({**saved, **dropped}, path, metadata={"format": "pt"})


def _partly_trained(model: Any) -> bool:
    """Some parameters trained and others not, outside peft (whose adapters save themselves)."""
    if hasattr(model, "peft_config"):
        return False
    return not all(param.requires_grad for param in model.parameters())


def load(artifact: Path, meta: ArtifactMeta, load_model: Callable[[str], Any], base: str | None = None) -> Any:
    """The artifact's model: ``load_model(path)`` reads a model folder (the base model's, ``base``
    as the caller resolved ``meta.base_model``, or the artifact's own when it holds the whole model),
    the adapter or the trained tensors on top. Tensors that do not fit (a head for another number of
    labels) are one line."""
    artifact, base = Path(artifact), base or meta.base_model
    try:
        return _load(artifact, meta, load_model, base)
    except RuntimeError as err:
        detail = _mismatch(err)
        if detail is None:
            raise
        what = f"base model {meta.base_model}" if needs_base(artifact) else "the model it holds"
        labels = f" with the {len(meta.labels)} labels of its {META_FILE}" if meta.labels else ""
        raise TunelabError(f"{artifact} does not fit {what}{labels}: {detail}",
                           f"load it onto the base model it was trained from, with the labels it was trained on "
                           f"({META_FILE}'s base_model and labels)") from None


def _load(artifact: Path, meta: ArtifactMeta, load_model: Callable[[str], Any], base: str) -> Any:
    if (artifact / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(base), str(artifact))
    if not (artifact / TRAINED_FILE).is_file():
        return load_model(str(artifact))
    from safetensors.torch import load_file

    model = load_model(base)
    unknown = model.load_state_dict(load_file(str(artifact / TRAINED_FILE)), strict=False).unexpected_keys
    if unknown:
        raise TunelabError(f"{artifact} holds tensors that base model {meta.base_model} lacks ({unknown[0]}...)",
                           "load it onto the base model it was trained from (tunelab.json's base_model)")
    return model


_SIZE_MISMATCH = re.compile(r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) "
                            r"from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)")


def _mismatch(err: RuntimeError) -> str | None:
    """What did not fit, from torch's or transformers' size-mismatch error; None for another error."""
    found = _SIZE_MISMATCH.search(str(err))
    if found:
        name, saved, built = found.groups()
        return f"{name} is [{saved}] in the artifact, [{built}] in the model"
    if "ignore_mismatched_sizes" in str(err):
        return "its weights are shaped for another model (a head for another number of labels?)"
    return None
