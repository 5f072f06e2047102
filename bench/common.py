"""Shared by the benchmarks: the environment record, a results file, a printed table."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
# torchvision is not Storyreel's, but transformers imports it when it can (its image
# processors), which slows a start: a run's versions say whether it could
PACKAGES = ("torch", "transformers", "diffusers", "accelerate", "xgrammar", "av", "moviepy",
            "gradio", "xformers", "torchvision")


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        if importlib.util.find_spec(name) is None:  # not importable here, whatever metadata says
            continue
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"device": device_name(), "python": platform.python_version(), "versions": versions,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_results(name: str, rows: list[dict[str, Any]], summary: dict[str, Any],
                  out_dir: Path | None = None) -> Path:
    path = (out_dir or RESULTS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = environment()
    rows = [{"device": env["device"], **row} for row in rows]
    path.write_text(json.dumps({**env, "summary": summary, "rows": rows}, ensure_ascii=False,
                               indent=2) + "\n", encoding="utf-8")
    return path


def bytecode_on_disk() -> bool:
    """Whether torch's modules have compiled bytecode on disk, as a pip install leaves them.
    Without it (an install made under PYTHONDONTWRITEBYTECODE) every process compiles torch,
    transformers and diffusers from source, which costs a start several seconds."""
    from importlib.util import find_spec

    torch = find_spec("torch")
    return bool(torch and torch.origin and any(Path(torch.origin).parent.glob("__pycache__/*.pyc")))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds, last result) of synchronised calls, after one untimed call."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    result = fn()
    times = []
    for _ in range(repeats):
        sync()
        began = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - began)
    return (sorted(times)[len(times) // 2] if times else 0.0), result


def compile_phases() -> dict[str, float]:
    """Seconds in each of torch.compile's timed phases so far in this process (Dynamo's
    "_compile.compile_inner" and its "bytecode_tracing", loading graphs from the cache, ...),
    the largest first: where a start's warm-up goes."""
    from torch._dynamo.utils import compile_times

    headers, values = compile_times(repr="csv", aggregate=True)
    phases = {name: float(value) for name, value in zip(headers, values) if value}
    return dict(sorted(phases.items(), key=lambda kv: -kv[1]))


# A CUDA kernel's kind, from its name; the first match wins. Triton's kernels first: Inductor
# names a fused kernel after every op it holds ("triton_per_fused_..._convolution_...").
KERNEL_KINDS = (("fused (Triton)", ("triton_",)),
                ("attention", ("flash", "fmha", "attention", "sdpa", "cudnn_generated_fort")),
                ("convolution", ("conv", "fprop", "implicit", "dgrad", "winograd", "nchwtonhwc",
                                 "nhwctonchw")),
                ("matmul", ("gemm", "nvjet", "cutlass", "sm90_xmma", "matmul", "ampere", "mm_")),
                ("normalization", ("norm",)))


def kernel_kind(name: str) -> str:
    """Which of KERNEL_KINDS a CUDA kernel named `name` is ("other" for none)."""
    lower = name.lower()
    return next((kind for kind, words in KERNEL_KINDS if any(w in lower for w in words)), "other")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.1 else f"{value:.2g}"
    return "" if value is None else str(value)[:60]


def add_clip_arguments(parser: Any) -> None:
    """The clip the SVD benchmarks render: model size, frame size and frames per run."""
    parser.add_argument("--size", choices=("svd-xt", "tiny"), default="svd-xt")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--frames", type=int, default=25)


def turbo_stand_in(svd_folder: Path) -> Path:
    """A stand-in for the turbo model: the saved pipeline's UNet as one state-dict file beside
    it (as AnimateLCM-SVD-xt publishes its UNet), with the pipeline registered as SVD-XT, its
    base. Same weights, so only speed and the loading code mean anything.

    The registration goes into a model store of the benchmark's own beside the pipeline, never
    into the person's: their store would otherwise name random weights as SVD-XT, and their next
    films would be noise. This process and its children use that store (STORYREEL_CACHE), seeded
    with the person's registrations; the compile cache stays the product's own."""
    import shutil

    from models.random_init import save_unet_only
    from models.registry import SVD_XT
    from models.speed import use_persistent_compile_cache
    from models.store import register, registry_file

    theirs = registry_file()
    use_persistent_compile_cache()  # fixed to the person's cache folder before it moves
    os.environ["STORYREEL_CACHE"] = str(svd_folder.parent / f"{svd_folder.name}-store")
    if theirs.is_file() and not registry_file().is_file():
        registry_file().parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(theirs, registry_file())
    turbo = svd_folder.parent / f"{svd_folder.name}-turbo"
    if not any(turbo.glob("*.safetensors")):
        save_unet_only(svd_folder, turbo)
    register(SVD_XT.name, svd_folder)
    return turbo
