from __future__ import annotations

from importlib import util
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError
from tunelab.methods import register
from tunelab.methods.base import ModelContext
from tunelab.methods.lora import Lora

if TYPE_CHECKING:
    import torch

    from tunelab.models import ModelRef


@register
class Qlora(Lora):
    """LoRA on a base model loaded in 4-bit NF4 with double quantisation, computing in bf16
    (Dettmers et al. 2023). bitsandbytes' 4-bit kernels run on CUDA GPUs only: without one (or
    without bitsandbytes) it is refused before anything runs."""

    name = "qlora"
    description = "LoRA on a 4-bit NF4 quantised base model (bitsandbytes; CUDA GPUs only)"
    architectures = "as lora, on a CUDA GPU with bitsandbytes installed"
    lr_source = "as LoRA (Hu et al. 2021, RoBERTa-base on GLUE: 4e-4 to 5e-4); Dettmers et al. 2023 for causal LMs"

    @classmethod
    def check_model(cls, model: ModelRef, task: str) -> None:
        import torch

        if not torch.cuda.is_available():
            raise TunelabError("qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels) and this machine has none",
                               "use lora here, or run qlora where a GPU is")
        if util.find_spec("bitsandbytes") is None:
            raise TunelabError("qlora needs bitsandbytes, which is not installed", "pip install bitsandbytes")

    def load_settings(self) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        return {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import prepare_model_for_kbit_training

        # Norms and the head in fp32, inputs that require gradients: what training a 4-bit model needs.
        return super().apply(prepare_model_for_kbit_training(model, use_gradient_checkpointing=False), ctx)
