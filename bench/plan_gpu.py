"""The planner on a GPU with the default model's architecture (Qwen3-1.7B, random weights).

    python bench/plan_gpu.py
    .venv/bin/python bench/plan_gpu.py --architecture qwen3-0.6b --scenes 5 --prompts 3
        # the optional CPU planner's architecture, on the CPU: bench/results/plan_qwen3-0.6b_*.json

Builds Qwen3-1.7B's architecture with random weights and a 151,936-token vocabulary (the
SmolLM2 tokenizer extended with merged tokens to the same size, since no Qwen tokenizer can be
downloaded here; the grammar's per-token cost depends on vocabulary size), saves it, and plans
a 6-scene storyboard through the product's planner (`--model` = that folder). Random weights
write every string to its length limit, so the constrained time is an upper bound. Then the
same number of tokens is generated without the grammar: the difference is the overhead of
constrained decoding. Writes bench/results/plan_gpu.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import print_table, write_results  # noqa: E402 (sets sys.path)

QWEN3_1_7B = dict(  # Qwen/Qwen3-1.7B config.json
    hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu")
QWEN3_0_6B = dict(  # Qwen/Qwen3-0.6B config.json: the optional CPU planner
    QWEN3_1_7B, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28)
ARCHITECTURES = {"qwen3-1.7b": QWEN3_1_7B, "qwen3-0.6b": QWEN3_0_6B}
PROMPTS = ("制作一段关于森林探险的短视频，包含河流和小动物", "A lighthouse keeper rescues a lost whale",
           "春节的夜晚，灯笼和烟花照亮了小镇")


def build_model(folder: Path, layers: int | None, tokenizer_dir: Path | None,
                architecture: str = "qwen3-1.7b") -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from models.llm import EMBEDDED, load_chat_model

    config = dict(ARCHITECTURES[architecture])
    if layers:
        config.update(num_hidden_layers=layers, hidden_size=256, intermediate_size=512,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64)
    if tokenizer_dir:
        from transformers import AutoTokenizer

        base = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        base = load_chat_model(EMBEDDED).tokenizer
    tokenizer = extend_vocabulary(base, config["vocab_size"] - 512)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**config, bos_token_id=base.bos_token_id,
                                         eos_token_id=base.eos_token_id))
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def extend_vocabulary(tokenizer, size: int):
    """A copy of a byte-level BPE tokenizer grown to `size` tokens by merging frequent pairs."""
    from transformers import PreTrainedTokenizerFast

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    ordered = sorted(vocab, key=vocab.get)[256:8000]
    next_id, i = max(vocab.values()) + 1, 0
    while len(vocab) < size:
        a, b = ordered[(i // len(ordered)) % len(ordered)], ordered[i % len(ordered)]
        i += 1
        if a + b in vocab:
            continue
        vocab[a + b] = next_id
        merges.append([a, b] if merges and isinstance(merges[0], list) else f"{a} {b}")
        next_id += 1
    from tokenizers import Tokenizer

    grown = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)))
    grown.chat_template = tokenizer.chat_template
    grown.eos_token, grown.bos_token = tokenizer.eos_token, tokenizer.bos_token
    grown.pad_token = tokenizer.eos_token
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--small", type=int, default=None,
                        help="a small model with this many layers (CPU smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", choices=("dynamic", "static"), default=None,
                        help="KV cache (default: what the product uses on this device)")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="a SmolLM2 tokenizer folder (default: the embedded model's)")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="qwen3-1.7b",
                        help="qwen3-0.6b: the optional CPU planner (run it on the CPU)")
    args = parser.parse_args()

    import torch

    from models.llm import load_chat_model
    from pipeline.cli import quiet_libraries
    from pipeline.beats import detect_language, plan_beats
    from pipeline.planner import PlanRequest, PlanTimings, _messages, _scene_request, plan_storyboard
    from pipeline.premise import find_premise

    quiet_libraries()
    folder = Path(tempfile.mkdtemp()) / f"{args.architecture}-random"
    started = time.perf_counter()
    build_model(folder, args.small, args.tokenizer, args.architecture)
    build_s = time.perf_counter() - started
    chat = load_chat_model(str(folder))
    if args.cache:
        chat.model.generation_config.cache_implementation = None if args.cache == "dynamic" \
            else args.cache
    rows = []
    for run, prompt in enumerate((PROMPTS[0],) + PROMPTS[:args.prompts]):  # run 0 warms up
        timings = PlanTimings()
        started = time.perf_counter()
        board = plan_storyboard(PlanRequest(prompt, scenes=args.scenes, seed=run,
                                            model=str(folder)), timings=timings)
        plan_s = time.perf_counter() - started
        # The same prompt and number of forward passes without the grammar (the planner's own
        # message builder, so the prefill is the same too).
        language = detect_language(prompt)
        beats = plan_beats(prompt, language, args.scenes, find_premise(prompt, language))
        messages = _messages(_scene_request(prompt, beats, detect_language(prompt), True),
                             "description")
        inputs = chat.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt",
            return_dict=True).to(chat.model.device)
        tokens = max(1, timings.tokens - timings.reasks)  # one generation's worth
        if chat.device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        chat.model.generate(**inputs, min_new_tokens=tokens, max_new_tokens=tokens,
                            do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.15,
                            pad_token_id=chat.tokenizer.eos_token_id)
        if chat.device == "cuda":
            torch.cuda.synchronize()
        free_s = time.perf_counter() - started
        rows.append({"prompt": prompt, "warmup": run == 0, "scenes": len(board.scenes),
                     "plan_s": round(plan_s, 3), "generate_s": round(timings.generate_s, 3),
                     "tokens": timings.tokens, "reasks": timings.reasks,
                     "unconstrained_s": round(free_s, 3),
                     "overhead_pct": round(100 * (timings.generate_s - free_s) / free_s, 1)
                     if timings.reasks == 0 else None,
                     "planner": board.planner})
        print(rows[-1], flush=True)
    timed = [r for r in rows if not r["warmup"]]
    overheads = [r["overhead_pct"] for r in timed if r["overhead_pct"] is not None]
    summary = {"median_plan_s": statistics.median(r["plan_s"] for r in timed),
               "median_overhead_pct": statistics.median(overheads) if overheads else None,
               "build_s": round(build_s, 1),
               "model": f"{args.architecture} architecture, random weights"
               if not args.small else f"small {args.small}-layer Qwen3"}
    summary["cache"] = chat.model.generation_config.cache_implementation or "dynamic"
    name = ("plan_gpu" if args.architecture == "qwen3-1.7b" else f"plan_{args.architecture}") \
        if not args.small else "plan_gpu_smoke"
    path = write_results(f"{name}_{summary['cache']}", rows, summary, args.out)
    print_table(rows, ["prompt", "plan_s", "tokens", "unconstrained_s", "overhead_pct"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
