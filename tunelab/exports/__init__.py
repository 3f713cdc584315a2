"""A run as a model that plain transformers loads: ``tunelab export RUN_OR_METHOD OUT``.

A run's artifact (``tunelab.artifact``) loads through tunelab: an adapter, or the tensors that trained,
on top of the base model its ``tunelab.json`` names. An export is the same model for anyone without
tunelab: one folder that ``AutoModelForSequenceClassification.from_pretrained`` (or
``AutoModelForCausalLM``) loads, with the tokenizer, the label names (classification) or the chat
template it was trained with (causal-lm), and a model card (``README.md``, ``card``). What is written
depends on what the artifact holds:

- a peft adapter is merged into the base weights (peft's ``merge_and_unload``), in fp32, then cast;
- the tensors that trained alone (``head``, ``bitfit``, ``freeze``) are loaded into the base model, and
  the whole model saved;
- a whole model (``full``, ``llrd``) is saved again, in the export's dtype;
- an adapter peft cannot merge (prompt tuning, prefix tuning, p-tuning: their virtual tokens are inputs,
  not a change of the weights) is exported as a peft adapter folder, for ``PeftModel.from_pretrained``,
  and ``Exported.note`` says so.

The model is read through ``tunelab.predict``'s loaders, so that an export is by construction the model
``tunelab predict`` uses; so this package sits in the layer above ``predict``. It writes into a folder
beside OUT and renames it into place at the end: a failure or a kill leaves OUT as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import artifact as artifacts
from tunelab.errors import TunelabError, first_line
from tunelab.exports.card import ADAPTER, MERGED, WHOLE, CardFacts, base_hub_id, card
from tunelab.exports.locate import Source, locate
from tunelab.methods.merging import MERGE_ERRORS, is_adapter, merged, unmergeable
from tunelab.spec.schema import DEFAULT_WORKDIR

__all__ = ["ADAPTER", "DTYPES", "MERGED", "WHOLE", "Exported", "check_dtype", "dtype_name", "export", "locate",
           "unmergeable"]

# --dtype: the name a user types -> torch's
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote, for the command's one line and for a caller to check."""

    path: Path
    run_key: str
    method: str
    form: str  # MERGED, WHOLE or ADAPTER: what the folder holds
    dtype: str  # fp32, bf16 or fp16
    bytes: int  # the folder's size
    note: str | None = None  # in one line, where the folder is not what was asked for (an adapter peft cannot merge)


def export(source: str, out: str | Path, *, merge: bool | None = None, dtype: str | None = None,
           workdir: str | Path = DEFAULT_WORKDIR, force: bool = False, trust_remote_code: bool = False,
           allow_pickle: bool = False) -> Exported:
    """Write ``source`` (a run key or a unique prefix of one, a method name for its best run in the
    latest comparison, or an artifact folder) into the folder ``out`` as a model transformers loads.

    ``merge``: None merges an adapter where peft can; False keeps any adapter as a peft adapter; True
    asks for a merge, and an adapter that cannot merge is still exported as an adapter, with a note
    (what is exported instead is said, not refused: the adapter is the whole result such a method has).
    ``dtype`` (fp32, bf16, fp16): the weights' dtype in the export, cast after merging in fp32; None
    keeps the dtype the model loads in (fp32 for the built-in models). ``force`` replaces a folder
    that is not empty. Everything a user can get wrong is checked before any weight is read."""
    torch_dtype = check_dtype(dtype) if dtype is not None else None
    found = locate(source, Path(workdir).expanduser())
    meta = artifacts.read_meta(found.artifact)
    target = Path(out).expanduser()
    check_target(target, force, found, meta)
    with staged(target) as folder:
        facts = _write(found, meta, folder, merge, torch_dtype, trust_remote_code, allow_pickle, str(out))
        (folder / "README.md").write_text(card(facts))
    return Exported(path=target, run_key=meta.run_key, method=meta.method, form=facts.form, dtype=facts.dtype,
                    bytes=sum(f.stat().st_size for f in target.rglob("*") if f.is_file()), note=facts.note)


def check_dtype(name: str) -> Any:
    """The torch dtype for ``name``, or one line: a name that is none of DTYPES, or a dtype this torch
    cannot hold on the CPU, where the export runs (probed: a build without it fails the conversion).
    fp16 is allowed on any CPU: it is a storage format here, for the machine that loads the export."""
    if name not in DTYPES:
        raise TunelabError(f"unknown dtype {name!r}", f"use one of {', '.join(DTYPES)}")
    import torch

    dtype = getattr(torch, DTYPES[name])
    try:
        torch.ones(2).to(dtype).float()
    except (RuntimeError, TypeError) as err:
        raise TunelabError(f"this torch ({torch.__version__}) cannot hold {name} tensors on the CPU: {first_line(err)}",
                           "export in fp32") from None
    return dtype


def check_target(target: Path, force: bool, found: Source, meta: artifacts.ArtifactMeta) -> None:
    """OUT is a new or empty folder, or ``force`` replaces it; never a folder that holds what the export
    reads or the work directory (``--force`` on ``.`` would delete them)."""
    if target.exists() and not target.is_dir():
        raise TunelabError(f"{target} is a file, not a folder", "give a folder to export into")
    if not (target.is_dir() and any(target.iterdir())):
        return
    if not force:
        raise TunelabError(f"{target} exists and is not empty", "give a new or empty folder, or pass --force to "
                           "replace it")
    base = Path(meta.base_model)
    kept = [found.artifact, *found.protected, Path.cwd(), Path.home(), *([base] if base.exists() else [])]
    resolved = target.resolve()
    for path in kept:
        inner = path.resolve()
        if resolved == inner or resolved in inner.parents:
            raise TunelabError(f"--force would delete {target}, which holds {path}", "export into a folder of its own")


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A folder beside ``target`` to write into, renamed into its place when the block ends (the old
    content, with ``--force``, removed only then); on any failure it goes, and so do the parent
    folders made for it, so that nothing half-written is left."""
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
        _replace(folder, target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        for parent in made:  # the deepest first
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _replace(folder: Path, target: Path) -> None:
    if target.is_dir() and any(target.iterdir()):
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(folder, target)
        shutil.rmtree(old, ignore_errors=True)
    else:  # nothing there, or an empty folder, which a rename replaces
        os.replace(folder, target)


def _write(found: Source, meta: artifacts.ArtifactMeta, folder: Path, merge: bool | None, dtype: Any,
           trust_remote_code: bool, allow_pickle: bool, named: str) -> CardFacts:
    """The model and tokenizer into ``folder``; what the card says of them."""
    from tunelab.predict import load_artifact

    with _quiet():
        loaded = load_artifact(found.artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        model, tokenizer = loaded.model, loaded.tokenizer
        stored = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        model, form, note = _merged(model.float(), meta.method, merge)  # fp32 first: a bf16 base upcasts exactly
        dtype = dtype or stored
        _cast(model, dtype)
        plain = meta.task == "causal-lm" and not getattr(tokenizer, "chat_template", None)
        if plain:
            from tunelab.tasks.causal_lm.instructions import plain_chat_template

            tokenizer.chat_template = plain_chat_template(tokenizer)  # what training asked it in
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
    if form == ADAPTER:
        _point_at_base(folder, meta)
    _readable(folder)
    return CardFacts(meta=meta, source=found, form=form, dtype=dtype_name(dtype), note=note, folder=named,
                     plain_template=plain)


def dtype_name(dtype: Any) -> str:
    """fp32, bf16 or fp16 for a torch dtype."""
    return next(name for name, torch_name in DTYPES.items() if str(dtype) == f"torch.{torch_name}")


@contextmanager
def _quiet() -> Iterator[None]:
    """transformers' progress bars, load reports and deprecation warnings off while the model loads and
    saves: the command says in one line what it wrote, and errors still come through."""
    import warnings

    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def _readable(folder: Path) -> None:
    """Every file with the permissions the umask gives new files: safetensors writes its files for
    their owner alone, beside a config everyone may read, and an export is made to be handed on."""
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.iterdir():
        if file.is_file():
            file.chmod(0o666 & ~umask)


def _merged(model: Any, method: str, merge: bool | None) -> tuple[Any, str, str | None]:
    """(the model to save, its form, the note saying why it is not what was asked)."""
    if not is_adapter(model):
        note = (f"{method} trains no adapter: its model is exported whole (--no-merge is for adapters)"
                if merge is False else None)
        return model, WHOLE, note
    why = unmergeable(model)
    if why is None and merge is not False:
        try:
            return merged(model), MERGED, None
        except MERGE_ERRORS as err:
            raise TunelabError(f"peft could not merge the {method} adapter: {first_line(err)}",
                               "pass --no-merge to export it as a peft adapter") from None
    if why is None:
        return model, ADAPTER, None  # --no-merge: as asked
    asked = ", not merged as --merge asked" if merge else ""
    return model, ADAPTER, (f"{method} cannot be merged into the base weights ({why}): exported as a peft "
                            f"adapter for PeftModel.from_pretrained{asked}")


def _cast(model: Any, dtype: Any) -> None:
    """``model`` in ``dtype``, refused in one line where a tensor holds values the dtype cannot (fp16
    ends at 65504: a larger weight would become inf, and every output through it)."""
    import torch

    if dtype != torch.float32:
        for name, tensor in model.state_dict().items():
            overflows = tensor.is_floating_point() and not torch.isfinite(tensor.to(dtype)).all()
            if overflows and torch.isfinite(tensor).all():
                raise TunelabError(f"{name} holds values that {dtype_name(dtype)} cannot (up to "
                                   f"{tensor.abs().max().item():.3g}; {dtype_name(dtype)} ends at "
                                   f"{torch.finfo(dtype).max:.3g})", "export in bf16 or fp32")
    model.to(dtype)


def _point_at_base(folder: Path, meta: artifacts.ArtifactMeta) -> None:
    """The adapter folder names the base model it goes on: the hub id a built-in model came from, or the
    artifact's base model (a folder or a hub id), rather than this environment's path to it. Written
    into the saved config, not set before saving: peft would look a hub id up on the network."""
    import json

    path = folder / artifacts.ADAPTER_CONFIG
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base_hub_id(meta) or meta.base_model
    if config.get("modules_to_save"):  # peft adds its task's defaults again at every load
        config["modules_to_save"] = list(dict.fromkeys(config["modules_to_save"]))
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
