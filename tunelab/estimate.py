"""What each method would train, save and hold in memory, known before anything trains: the model
built from its config on the meta device (no weights downloaded, read or allocated), the method
applied as a run applies it, its parameters counted, and its peak training memory computed from
them (``Memory``). ``tunelab estimate`` prints it; time per step is not estimated yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import methods as registry
from . import tasks
from .errors import TunelabError
from .measure import count_parameters

# What a CPU run's process holds besides the model and its training state: Python, torch,
# transformers, peft and datasets imported (460 MB measured), the tokenizer, the prepared splits, the
# Trainer. Measured on the development machine as the peak RSS of a `head` run (749 MB, SST-2,
# MiniLM) less its weights (87 MB): the one method whose training state and stored activations are
# negligible. On a GPU the peak is CUDA's max allocated, which holds none of it.
CPU_FRAMEWORK_BYTES = 662 * 2**20


@dataclass(frozen=True)
class Memory:
    """Peak training memory, in bytes, as tunelab trains (the weights in the dtype they load in,
    peft's adapters in fp32; AdamW; no gradient checkpointing): the formula in the README."""

    weights: int  # every parameter, in its dtype
    gradients: int  # the trainable ones', in theirs
    optimizer: int  # AdamW's two moments per trainable parameter, in its dtype
    activations: int  # what the backward pass needs, for the blocks it runs through
    framework: int  # CPU_FRAMEWORK_BYTES on a CPU, 0 on a GPU

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.framework


@dataclass(frozen=True)
class Estimate:
    method: str
    trainable_params: int
    total_params: int
    artifact_bytes: int  # the weights the artifact would hold (``tunelab.artifact``), without the tokenizer
    memory: Memory | None = None
    refused: str | None = None  # why the method cannot train this model (counts are then 0)

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / max(self.total_params, 1)


def estimate(model: str, task: str = "classification", methods: list[str] | None = None,
             trust_remote_code: bool = False, batch_size: int = 16, max_length: int = 128,
             device: str = "cpu") -> list[Estimate]:
    """Each method's exact parameter counts and artifact size on ``model`` (a built-in name, a
    folder, even one holding ``config.json`` alone, or a hub id: only its config is read). Every
    method of the task when ``methods`` is None, those that cannot train the model marked
    ``refused``; a method named in ``methods`` that cannot is an error. Memory is for batches of
    ``batch_size`` padded to ``max_length`` (the worst case) on ``device`` (cpu or cuda)."""
    from .models import load_config, model_folder

    if device not in ("cpu", "cuda"):
        raise TunelabError(f"device {device!r} is not one tunelab estimates for", "use cpu or cuda")
    the_task = tasks.get(task)
    able = [name for name in registry.available() if task in registry.get(name).tasks]
    path = model_folder(model)
    config = load_config(path, trust_remote_code)  # a model that cannot load is one error, not one per method
    out = []
    for name in methods or able:
        method = registry.get(name)
        if task not in method.tasks:
            raise TunelabError(f"method {name!r} does not apply to task {task}",
                               f"methods for {task}: {', '.join(able)}")
        try:
            built = the_task.on_meta(method(method.Options()), path, config, trust_remote_code)
        except TunelabError as err:
            if methods:
                raise
            out.append(Estimate(name, 0, 0, 0, refused=str(err)))
            continue
        trainable, total = count_parameters(built)
        shape = _Shape(config, task, batch_size, max_length + _virtual_tokens(built), device)
        out.append(Estimate(name, trainable, total, _artifact_bytes(built, method), _memory(built, shape)))
    return out


@dataclass(frozen=True)
class _Shape:
    config: Any
    task: str
    batch: int
    length: int  # tokens each example's blocks attend over, virtual ones included
    device: str


def _memory(model: Any, shape: _Shape) -> Memory:
    """Each tensor in its own dtype: the base model's as stored, a peft adapter's fp32 (peft
    upcasts them); gradients and AdamW's moments in their parameter's."""
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    trained = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    half = shape.device != "cpu" or min(p.element_size() for p in params) < 4  # bf16 autocast, or a 16-bit model
    return Memory(weights=weights, gradients=trained, optimizer=2 * trained,
                  activations=_activations(model, shape, half),
                  framework=CPU_FRAMEWORK_BYTES if shape.device == "cpu" else 0)


def _activations(model: Any, shape: _Shape, half: bool) -> int:
    """Per block the backward pass runs through, b·s·(34·h + 5·a·s) bytes in 16-bit (``half``: a
    16-bit model, or a GPU's bf16 autocast) and twice that in fp32: Korthikanti et al. 2022's count
    for one transformer layer; plus a causal LM's logits, their fp32 copy for the loss and its
    gradient (3·b·s·V·4). The backward runs from the top down to the lowest block holding a
    trainable parameter (all of them when the embeddings or a prompt train; none for a linear
    probe)."""
    from .methods.layers import parameter_depths

    config, b, s = shape.config, shape.batch, shape.length
    num_layers, depths = parameter_depths(model)
    trained = [0 if "prompt_encoder" in name else depth for name, param, depth in depths if param.requires_grad]
    lowest = min(trained, default=num_layers + 1)
    blocks = num_layers - max(lowest, 1) + 1 if lowest <= num_layers else 0
    per_block = b * s * (34 * config.hidden_size + 5 * config.num_attention_heads * s) * (1 if half else 2)
    logits = 3 * b * s * config.vocab_size * 4 if shape.task == "causal-lm" else 0
    return blocks * per_block + logits


def _virtual_tokens(model: Any) -> int:
    """Prompt tuning's and p-tuning's virtual tokens lengthen every sequence the blocks see."""
    config = model.peft_config["default"] if hasattr(model, "peft_config") else None
    return int(config.num_virtual_tokens) if config is not None and config.is_prompt_learning else 0


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
