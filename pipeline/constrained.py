"""Grammar-constrained decoding for transformers' generate(), with the mask work off the GPU's
critical path.

xgrammar's own transformers processor reads the last sampled token with `.item()` when the
processor runs, which is after the next forward pass was launched: the CPU waits for that
forward, then fills the token mask while the GPU sits idle. Here a stopping criterion (which
generate() calls after appending each token and before launching the next forward) hands the
token over, so the processor can fill the mask while the GPU computes: on an H100 with CUDA
graphs this cut the overhead of constrained decoding from about 35% to the figure in
bench/results/plan_gpu_static.json.
"""
from __future__ import annotations

from typing import Any

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, StoppingCriteria


class GrammarGuide:
    """One generation's grammar state; pass `.processor` and `.stopper` to generate()."""

    def __init__(self, compiled: Any, device: torch.device | str):
        self.matcher = xgr.GrammarMatcher(compiled)
        vocab = compiled.tokenizer_info.vocab_size
        pin = torch.device(device).type == "cuda"
        self.bitmask = xgr.allocate_token_bitmask(1, vocab)
        if pin:
            self.bitmask = self.bitmask.pin_memory()
        self.device_mask = self.bitmask.to(device)
        self.pending: int | None = None  # sampled, not yet fed to the matcher
        self.processor = _MaskLogits(self)
        self.stopper = _TokenHandOver(self)

    def feed_pending(self) -> None:
        if self.pending is not None and not self.matcher.is_terminated():
            token, self.pending = self.pending, None
            if not self.matcher.accept_token(token):
                raise RuntimeError(f"the model sampled token {token}, which the grammar forbids")

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        self.feed_pending()
        if self.matcher.is_terminated():
            return scores
        self.matcher.fill_next_token_bitmask(self.bitmask, 0)
        self.device_mask.copy_(self.bitmask, non_blocking=True)
        xgr.apply_token_bitmask_inplace(scores, self.device_mask)
        return scores


class _MaskLogits(LogitsProcessor):
    def __init__(self, guide: GrammarGuide):
        self.guide = guide

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise ValueError("GrammarGuide decodes one sequence at a time")
        return self.guide.mask(scores)


class _TokenHandOver(StoppingCriteria):
    """Never stops anything: it only passes the newest token to the guide."""

    def __init__(self, guide: GrammarGuide):
        self.guide = guide

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        self.guide.pending = int(input_ids[0, -1])
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
