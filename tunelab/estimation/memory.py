"""What each method would train, save and hold in memory, known before anything trains: the model
built from its config on the meta device (no weights downloaded, read or allocated), the method
applied as a run applies it, its parameters counted, and its peak training memory computed from
them (``Memory``). ``tunelab estimate`` prints it, with the time per step of ``tunelab.estimation.step_time``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from tunelab import methods as registry
from tunelab import tasks
from tunelab.errors import TunelabError
from tunelab.estimation import step_time
from tunelab.estimation.setup import Setup, Shape
from tunelab.estimation.step_time import Speed, check_local_weights, step_flops
from tunelab.methods.layers import parameter_depths
from tunelab.methods.lora import LoraFromTheWeights
from tunelab.models import load_config, model_folder
from tunelab.run.measure import count_parameters

# What a CPU run's process holds besides the model and its training state: Python, torch,
# transformers, peft and datasets imported (460 MB measured), the tokenizer, the prepared splits, the
# Trainer. Measured on the development machine as the peak RSS of a `head` run (749 MB, SST-2,
# MiniLM) less its weights (87 MB): the one method whose training state and stored activations are
# negligible. On a GPU the peak is CUDA's max allocated, which holds none of it.
CPU_FRAMEWORK_BYTES = 662 * 2**20
# bitsandbytes' NF4 with double quantisation (QLoRA): 4 bits a weight, an 8-bit scale per block of
# 64 weights and an fp32 scale per 256 of those blocks (Dettmers et al. 2023, section 3).
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_bytes(text: str, what: str = "--device-memory") -> int:
    """``24GB`` (10⁹ bytes each), ``24GiB`` (2³⁰), ``512MiB``, ``1.5TB``: a unit is required, since a
    bare ``24`` could mean anything."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)b\s*", text, flags=re.IGNORECASE)
    if not found:
        raise TunelabError(f"cannot read {what} {text!r} as a size",
                           "write a number and a unit, such as 24GB (10⁹ bytes) or 24GiB (2³⁰ bytes)")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


@dataclass(frozen=True)
class Memory:
    """Peak training memory, in bytes, as tunelab trains (the weights in the dtype they load in,
    peft's adapters in fp32; AdamW): the formula of the docs' estimate guide, each term apart so that a reader
    sees what dominates."""
    weights: int  # every parameter, in its dtype (QLoRA's quantised ones in NF4)
    gradients: int  # the trainable ones', in theirs
    optimizer: int  # AdamW's two moments per trainable parameter, in its dtype
    activations: int  # what the backward pass needs, for the blocks it runs through
    framework: int  # CPU_FRAMEWORK_BYTES on a CPU, 0 on a GPU
    casts: int = 0  # on a GPU: the 16-bit copies autocast keeps of the fp32 weights that train

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.framework + self.casts


@dataclass(frozen=True)
class Estimate:
    method: str
    trainable_params: int
    total_params: int
    artifact_bytes: int  # the weights the artifact would hold (``tunelab.artifact``), without the tokenizer
    memory: Memory | None = None
    refused: str | None = None  # why the method cannot train this model (counts are then 0)
    flops: float = 0.0  # one training step's (``step_time.step_flops``)
    step_seconds: float | None = None  # None where this machine lacks the device
    speed: Speed | None = None  # what step_seconds came from

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / max(self.total_params, 1)

    def fits(self, budget: int) -> bool:
        return self.memory is not None and self.memory.total <= budget


def estimate(model: str, task: str = "classification", methods: list[str] | None = None,
             trust_remote_code: bool = False, setup: Setup | None = None, calibrate: bool = False,
             workdir: str | None = None) -> list[Estimate]:
    """Each method's exact parameter counts and artifact size on ``model`` (a built-in name, a
    folder, even one holding ``config.json`` alone, or a hub id: only its config is read), its peak
    training memory under ``setup`` and, where this machine has the device, its seconds per step
    (``tunelab.estimation.step_time``; corrected by real steps with ``calibrate``, or by the runs of this
    model in ``workdir``'s store). Every method of the task when ``methods`` is None, those that
    cannot train the model marked ``refused``; a method named in ``methods`` that cannot is an error."""
    setup = setup or Setup()
    tasks.get(task)  # an unknown task is an error, not a table of no methods
    if setup.device not in ("cpu", "cuda"):
        raise TunelabError(f"device {setup.device!r} is not one tunelab estimates for", "use cpu or cuda")
    if setup.dtype is not None and setup.dtype not in DTYPES:
        raise TunelabError(f"dtype {setup.dtype!r} is not one tunelab estimates for", f"use {', '.join(DTYPES)}")
    able = [name for name in registry.available() if task in registry.get(name).tasks]
    for name in methods or []:
        if task not in registry.get(name).tasks:
            raise TunelabError(f"method {name!r} does not apply to task {task}",
                               f"methods for {task}: {', '.join(able)}")
    path = model_folder(model)
    if calibrate:
        check_local_weights(path, model)
    config = load_config(path, trust_remote_code)  # a model that cannot load is one error, not one per method
    if setup.dtype:
        config.dtype = DTYPES[setup.dtype]  # as if stored in it: a run loads the weights in their stored dtype
    context = _Context(path, config, task, trust_remote_code)
    rows = []
    for name in methods or able:
        try:
            rows.append(_estimate_one(name, context, setup))
        except TunelabError as err:
            if methods:
                raise
            rows.append(Estimate(name, 0, 0, 0, refused=str(err)))
    speed = _speed(context, setup, calibrate, workdir)
    if speed is None:
        return rows
    return [replace(row, step_seconds=speed.seconds(row.flops), speed=speed) if row.memory else row for row in rows]


@dataclass(frozen=True)
class _Context:
    path: str
    config: Any
    task: str
    trust_remote_code: bool


def _estimate_one(name: str, context: _Context, setup: Setup) -> Estimate:
    method = registry.get(name)
    instance = method(method.Options())
    quantised = "quantization_config" in instance.load_settings()
    if quantised and setup.device == "cpu":
        raise TunelabError(f"{name} loads the model in 4 bits, which needs a CUDA GPU", "estimate --device cuda")
    built = tasks.get(context.task).on_meta(instance, context.path, context.config, context.trust_remote_code)
    trainable, total = count_parameters(built)
    shape = Shape(context.config, context.task, setup, setup.max_length + _virtual_tokens(built),
                  backward_blocks(built))
    return Estimate(name, trainable, total, _artifact_bytes(built, method), _peak_memory(built, shape, quantised),
                    flops=step_flops(built, shape))


def _speed(context: _Context, setup: Setup, calibrate: bool, workdir: str | None) -> Speed | None:
    """How fast this machine runs a step: None where it lacks the device (a CUDA estimate on a
    machine without one: memory and counts still hold)."""
    import torch

    if setup.device == "cuda" and not torch.cuda.is_available():
        return None
    products = step_time.measured_throughput(context.config, setup.batch_size * setup.max_length, setup.device)

    def flops(method: str, its: Setup) -> float | None:
        try:
            return _estimate_one(method, context, its).flops
        except TunelabError:
            return None

    if calibrate:
        dtype = {"dtype": DTYPES[setup.dtype]} if setup.dtype else {}
        points = step_time.calibration(context.path, context.task, setup, context.trust_remote_code, flops, dtype)
        return step_time.fit(points, products, "calibrated")
    stored = step_time.stored_steps(workdir, context.path, context.task, setup, flops) if workdir else []
    return step_time.fit(stored, products, "store")


def backward_blocks(model: Any) -> int:
    """How many blocks the backward pass runs through: from the top down to the lowest block
    holding a trainable parameter (all of them when the embeddings or a prompt train; none for a
    linear probe)."""
    num_layers, depths = parameter_depths(model)
    trained = [0 if "prompt_encoder" in name else depth for name, param, depth in depths if param.requires_grad]
    lowest = min(trained, default=num_layers + 1)
    return num_layers - max(lowest, 1) + 1 if lowest <= num_layers else 0


def _peak_memory(model: Any, shape: Shape, quantised: bool) -> Memory:
    """Each tensor in its own dtype: the base model's as stored (with QLoRA, the frozen linear
    weights in NF4 and the rest upcast to fp32, as ``prepare_model_for_kbit_training`` leaves
    them), a peft adapter's fp32 (peft upcasts them); gradients and AdamW's moments in their
    parameter's; on a GPU, autocast's cached 16-bit copy of each fp32 linear weight that trains."""
    import torch

    params = list(model.parameters())
    nf4 = _quantisable(model) if quantised else set()
    weights = sum(int(p.numel() * NF4_BYTES) if id(p) in nf4 else p.numel() * p.element_size() for p in params)
    trained = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    cuda = shape.setup.device == "cuda"
    casts = sum(2 * m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
                and m.weight.requires_grad and m.weight.element_size() == 4) if cuda else 0
    half = cuda or min(p.element_size() for p in params) < 4  # bf16 autocast, or a 16-bit model
    activations = _activations(shape, half) + _adapter_activations(model, shape, half)
    return Memory(weights=weights, gradients=trained, optimizer=2 * trained, activations=activations,
                  framework=0 if cuda else CPU_FRAMEWORK_BYTES, casts=casts)


def _quantisable(model: Any) -> set[int]:
    """The weights bitsandbytes stores in 4 bits: every frozen linear layer's but the output head's."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {id(m.weight) for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m is not head and not m.weight.requires_grad}


def _adapter_activations(model: Any, shape: Shape, half: bool) -> int:
    """What peft's LoRA layers keep beside the block's own activations, per adapted linear layer:
    with dropout, its output and its mask (b·s·in values and bytes); with DoRA, three outputs more
    (the base output, the adapter's, and their weight-norm scaled sum: 3·b·s·out). Recomputed, not
    kept, under gradient checkpointing."""
    import torch

    if shape.setup.gradient_checkpointing:
        return 0
    width = 2 if half else 4
    total = 0
    for module in model.modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, torch.nn.ModuleDict) or "default" not in lora_a:
            continue
        if getattr(module.lora_dropout["default"], "p", 0) > 0:
            total += shape.tokens * module.in_features * (width + 1)
        if module.use_dora.get("default"):
            total += 3 * shape.tokens * module.out_features * width
    return total


def _activations(shape: Shape, half: bool) -> int:
    """Per block the backward pass runs through, b·s·(34·h + 5·a·s) bytes in 16-bit (``half``: a
    16-bit model, or a GPU's bf16 autocast) and twice that in fp32: Korthikanti et al. 2022's count
    for one transformer layer. With gradient checkpointing, each such block keeps its input only
    (b·s·h values) and one block's activations exist at a time, recomputed. Plus a causal LM's
    logits, their fp32 copy for the loss and its gradient (3·b·s·V·4)."""
    config, b, s = shape.config, shape.setup.batch_size, shape.length
    width = 1 if half else 2
    per_block = b * s * (34 * config.hidden_size + 5 * config.num_attention_heads * s) * width
    logits = 3 * b * s * config.vocab_size * 4 if shape.task == "causal-lm" else 0
    if shape.setup.gradient_checkpointing and shape.blocks:
        return shape.blocks * 2 * b * s * config.hidden_size * width + per_block + logits
    return shape.blocks * per_block + logits


def _virtual_tokens(model: Any) -> int:
    """Prompt tuning's and p-tuning's virtual tokens lengthen every sequence the blocks see."""
    config = model.peft_config["default"] if hasattr(model, "peft_config") else None
    return int(config.num_virtual_tokens) if config is not None and config.is_prompt_learning else 0


def _artifact_bytes(model: Any, method: type[registry.Method]) -> int:
    """What ``tunelab.artifact.save`` would write: a peft adapter's state, the tensors that train,
    or every parameter. AdaLoRA's is an upper bound (it saves the ranks it keeps); PiSSA's and
    OLoRA's adapters are saved as a LoRA of twice the rank."""
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
