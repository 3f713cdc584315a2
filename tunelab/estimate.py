"""What each method would train and save, known before anything trains: the model built from its
config on the meta device (no weights downloaded, read or allocated), the method applied, its
parameters counted. ``tunelab estimate`` prints it; peak memory and time per step are not
estimated yet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import methods as registry
from . import tasks
from .errors import TunelabError
from .measure import count_parameters


@dataclass(frozen=True)
class Estimate:
    method: str
    trainable_params: int
    total_params: int
    artifact_bytes: int  # the weights the artifact would hold (``tunelab.artifact``), without the tokenizer
    refused: str | None = None  # why the method cannot train this model (counts are then 0)

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / max(self.total_params, 1)


def estimate(model: str, task: str = "classification", methods: list[str] | None = None,
             trust_remote_code: bool = False) -> list[Estimate]:
    """Each method's exact parameter counts and artifact size on ``model`` (a built-in name, a
    folder, even one holding ``config.json`` alone, or a hub id: only its config is read). Every
    method of the task when ``methods`` is None, those that cannot train the model marked
    ``refused``; a method named in ``methods`` that cannot is an error."""
    the_task = tasks.get(task)
    able = [name for name in registry.available() if task in registry.get(name).tasks]
    names = methods or able
    from .models import load_config, resolve_model

    path = model
    if model.startswith("builtin:"):  # a package (SmolLM2's a GGUF file, dequantised once)
        path = resolve_model(model, trust_remote_code, task=task).path
    elif (model.startswith((".", "/", "~")) or model.count("/") > 1) and not os.path.exists(model):  # as models does
        raise TunelabError(f"model path {model} does not exist", "check the path or give a hub id")
    load_config(path, trust_remote_code)  # a model that cannot load is one error, not one per method
    out = []
    for name in names:
        method = registry.get(name)
        if task not in method.tasks:
            raise TunelabError(f"method {name!r} does not apply to task {task}",
                               f"methods for {task}: {', '.join(able)}")
        try:
            built = the_task.on_meta(method(method.Options()), path, trust_remote_code)
        except TunelabError as err:
            if methods:
                raise
            out.append(Estimate(name, 0, 0, 0, refused=str(err)))
            continue
        trainable, total = count_parameters(built)
        out.append(Estimate(name, trainable, total, _artifact_bytes(built, method)))
    return out


def _artifact_bytes(model: Any, method: type[registry.Method]) -> int:
    """What ``tunelab.artifact.save`` would write: a peft adapter's state, the tensors that train,
    or every parameter. AdaLoRA's is an upper bound (it saves the ranks it keeps); PiSSA's and
    OLoRA's adapters are saved as a LoRA of twice the rank."""
    from .methods.lora import LoraFromTheWeights

    if hasattr(model, "peft_config"):
        from peft import get_peft_model_state_dict

        config = model.peft_config["default"]
        if config.is_prompt_learning:  # the prompt it computes, which needs real weights to compute
            return _prompt_bytes(model, config)
        tensors = get_peft_model_state_dict(model)
        doubled = issubclass(method, LoraFromTheWeights)
        return sum(t.numel() * t.element_size() * (2 if doubled and "lora_" in name else 1)
                   for name, t in tensors.items())
    params = list(model.parameters())
    if not all(p.requires_grad for p in params):
        params = [p for p in params if p.requires_grad]
    return sum(p.numel() * p.element_size() for p in params)


def _prompt_bytes(model: Any, config: Any) -> int:
    """A prompt-learning adapter saves the virtual tokens' embeddings as its encoder computes them
    (for prefix tuning, a key and a value per layer), and the new head beside them."""
    from peft import PeftType

    width = config.token_dim * (2 * config.num_layers if config.peft_type == PeftType.PREFIX_TUNING else 1)
    prompt = config.num_virtual_tokens * config.num_transformer_submodules * width
    head = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "prompt_encoder" not in n)
    return 4 * (prompt + head)  # float32
