"""FP8 linear layers for the video UNet's transformer blocks (Hopper and Ada GPUs): a lever
bench/svd_levers.py measures. Not used by the product: compiled, it was slower than bf16 on an H100.

Each `nn.Linear` keeps its weight in float8 e4m3 with one scale per output row; its input is
quantized per row on the fly, and `torch._scaled_mm` multiplies the two at the FP8 tensor-core
rate (twice bf16's on an H100) into a bf16 result. Under `torch.compile` the on-the-fly
quantization fuses into one pass over the input. Convolutions and attention stay in bf16.

Only layers whose inputs have many rows are converted: a cross-attention key or value sees one
image token per video, where FP8 saves nothing and costs precision.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

E4M3_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448
SKIP_SUFFIXES = ("attn2.to_k", "attn2.to_v", "attn2.to_kv")  # one context token per video


def fp8_supported() -> bool:
    """True on GPUs with FP8 tensor cores (compute capability 8.9 or newer)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)


class Float8Linear(nn.Module):
    """y = x Wᵀ + b, with W in float8 e4m3 (row-wise scales) and x quantized per row."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        self.weight_fp8 = nn.Parameter((weight / scale).to(torch.float8_e4m3fn),
                                       requires_grad=False)        # (out, in), row-major
        self.weight_scale = nn.Parameter(scale.t().contiguous(), requires_grad=False)  # (1, out)
        self.bias = (nn.Parameter(linear.bias.detach().to(self.out_dtype), requires_grad=False)
                     if linear.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        amax = rows.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
        x_scale = amax / E4M3_MAX                                                  # (rows, 1)
        x_fp8 = (rows.float() / x_scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(x_fp8, self.weight_fp8.t(), scale_a=x_scale,
                               scale_b=self.weight_scale, bias=self.bias,
                               out_dtype=self.out_dtype)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3"


def convert_to_fp8(model: nn.Module, within: tuple[str, ...] = ("transformer_blocks", "proj_in", "proj_out")) -> int:
    """Swap the Linear layers inside `within` blocks for Float8Linear; returns how many."""
    swapped = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name.endswith(SKIP_SUFFIXES):
            continue
        if not any(part in name for part in within):
            continue
        if module.in_features % 16 or module.out_features % 16:  # FP8 tensor-core shapes
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Float8Linear(module))
        swapped += 1
    log.info("FP8: %d linear layers converted", swapped)
    return swapped
