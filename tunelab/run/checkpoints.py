"""Checkpoints that resume exactly: the best evaluation's trainable tensors kept beside the Trainer's
own checkpoint, and which checkpoint folders are complete."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    TrainerCallback,
)

from tunelab.run.distributed import from_rank_zero, local_tensor, resharded, shard_of, whole

BEST_FILE = "best.safetensors"  # in a checkpoint: the best evaluation's trainable tensors (``Checkpoints``)



class Checkpoints(TrainerCallback):
    """Checkpoints at a resume cadence, and the best weights kept apart.

    A checkpoint (weights, optimizer state, random state) lets a killed run resume; for full
    fine-tuning of a BERT-base model it is 1.3 GB, and writing one at every evaluation was most of
    what a run spent outside training on a GPU. So one is written at the first evaluation at least
    ``train.checkpoint_minutes`` after the last (0: at every evaluation), or where another callback
    asks (a learning-rate candidate's rung). The best evaluation's trainable tensors are copied to
    host memory when it happens, written into each checkpoint beside it (``best.safetensors``) and
    put back into the model when training ends: what ``load_best_model_at_end`` did, without a
    checkpoint per evaluation.

    Under FSDP each process keeps its own shard of the best weights; a checkpoint gathers them
    into one file, and a resumed process takes its shard of it back."""

    def __init__(self, minutes: float, resume_from: Path | None) -> None:
        self.seconds = 60 * minutes
        self.resume_from = resume_from
        self.last_saved = time.perf_counter()
        self.best_step: int | None = None
        self.best: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.last_saved = time.perf_counter()
        if self.resume_from and (self.resume_from / BEST_FILE).is_file():
            from safetensors.torch import load_file

            whole = load_file(self.resume_from / BEST_FILE)
            self.best = {name: shard_of(param, whole[name]) for name, param in resharded(model).named_parameters()
                         if name in whole}
            self.best_step = state.best_global_step

    def on_step_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self._keep_if_best(state, model)  # the weights evaluated at the step before are still unchanged

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if control.should_save:  # rank 0's clock decides for every rank: a save is collective
            control.should_save = from_rank_zero(time.perf_counter() - self.last_saved >= self.seconds)

    def on_save(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.last_saved = time.perf_counter()
        state.best_model_checkpoint = None  # the best weights travel in every checkpoint: no folder to keep
        self._keep_if_best(state, model)
        best = whole(self.best, resharded(model))  # a collective under FSDP: every process gathers
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if best:
            from safetensors.torch import save_file

            save_file(best, str(folder / BEST_FILE) + ".tmp")
            os.replace(str(folder / BEST_FILE) + ".tmp", folder / BEST_FILE)
        for older in folder.parent.glob("checkpoint-*"):  # this one is whole now: the only one needed
            if older != folder:
                shutil.rmtree(older, ignore_errors=True)

    def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self._keep_if_best(state, model)
        if self.best and self.best_step != state.global_step:
            with torch.no_grad():
                for name, param in resharded(model).named_parameters():
                    if name in self.best:
                        local_tensor(param).copy_(self.best[name])

    def _keep_if_best(self, state: Any, model: Any) -> None:
        if state.best_global_step == state.global_step and self.best_step != state.global_step and model is not None:
            self.best = {name: local_tensor(param).detach().to("cpu", copy=True).contiguous()
                         for name, param in resharded(model).named_parameters() if param.requires_grad}
            self.best_step = state.global_step



def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint, or None. A kill can land while one is being written: the
    Trainer writes ``trainer_state.json`` last, so a checkpoint whose state does not parse (or is
    missing) is incomplete; it is removed, and the one before it is used."""
    found = sorted((c for c in folder.glob("checkpoint-*") if c.name.split("-", 1)[1].isdigit()),
                   key=lambda c: int(c.name.split("-", 1)[1]), reverse=True)
    for checkpoint in found:
        if _complete(checkpoint):
            return checkpoint
        print(f"tunelab: {checkpoint} is incomplete (interrupted while it was written, or written before "
              "tunelab kept the best weights in it): removed", file=sys.stderr)
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None



def _complete(checkpoint: Path) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or "global_step" not in state:
        return False
    weights = any(f.name != BEST_FILE for f in checkpoint.glob("*.safetensors")) or any(checkpoint.glob("*.bin"))
    best = state.get("best_global_step") is None or (checkpoint / BEST_FILE).is_file()  # written last
    optimizer = any((checkpoint / name).is_file() for name in ("optimizer.pt", "optimizer.bin"))  # .bin: FSDP's
    return weights and best and optimizer
