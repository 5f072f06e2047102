"""Compiled regions saved whole and loaded back at the next start.

`torch.compile` keeps Inductor's kernels on disk, but every new process still has Dynamo trace
each compiled region's Python again before it finds them: 10-15 s of a 29-36 s second start on
an H100 host (bench/results/svd_profiles_turbo_2026-11-27_fourth_session.json). Here each
region (one of the UNet's repeated blocks, the VAE's decoder or encoder, a keyframe UNet block) is
compiled ahead of time for the inputs it first gets (`torch.compile(...).aot_compile`): the traced
code, its guards and Inductor's kernels are saved as one file in Storyreel's compile cache, and a
later start loads that file instead of tracing.

- One file per block structure and input layout: blocks with the same parameters' shapes called
  with the same input shapes share it, and the module is passed in at each call, so the weights
  are never part of the file (a test loads a file into a block with other weights).
- The file's name hashes what makes it valid: the block's structure (its submodules' classes,
  plain settings, parameters' shapes and attention processors), the inputs' shapes, strides and
  dtypes, the region's Inductor tuning (the VAE decoder's kernels are tuned by timing), and the
  Python, torch and diffusers versions, GPU and lever code that models.speed.compile_identity
  names (an update of diffusers compiles anew). A new shape
  compiles and saves a new file; nothing is ever loaded for inputs it was not made for, and the
  file's own guards check each call besides (a refusal: the usual compile, and the log says so).
- The files are code this process runs, as Inductor's own cache is: they live in the same
  folder, which only the person's account writes.
- Where this torch cannot compile ahead of time, or a region cannot be (a graph break), the
  region is compiled the usual way, traced at every start, and the log says so.
- A file no start has loaded for KEEP_DAYS (an earlier version's, another video size's) is
  deleted the next time one is saved.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

BACKEND = "inductor"  # bench/compile_trace_cpu.py sets "eager" to time Dynamo alone
GUARD_FAILED = "GuardManager check failed"  # how torch words a loaded file's guard refusing
KEEP_DAYS = 30.0  # a saved compile no start loaded for this long is deleted when one is saved

_loaded: dict[str, Callable[..., Any]] = {}  # file key -> compiled function, for this process
_told: set[str] = set()  # classes whose fallback the log has already announced


def supported() -> bool:
    """Whether this torch can compile a module ahead of time and load the result back."""
    import torch

    return hasattr(torch.compiler, "load_compiled_function")


def precompile(module: Any, tuning: dict[str, Any] | None = None) -> None:
    """Compile `module` ahead of time at its first call of each input layout (loading the file a
    previous process saved, if there is one); `module(...)` goes through it from then on.
    `tuning`: Inductor settings for this region's compile (models.speed.DECODER_TUNING), part of
    its file's name."""
    module._compiled_call_impl = PrecompiledRegion(module, tuning or {})


class PrecompiledRegion:
    """The module's call: the compiled function for the call's input layout, found in this
    process, loaded from the cache folder, or compiled and saved there."""

    def __init__(self, module: Any, tuning: dict[str, Any]):
        self.module = module
        self.tuning = dict(tuning)
        self.structure = _structure(module)
        self.functions: dict[tuple, Callable[..., Any]] = {}
        self.traced: Callable[..., Any] | None = None  # the usual compile, where this one fails

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        layout = (_layout(args), _layout(sorted(kwargs.items())), torch.is_grad_enabled(),
                  torch.is_inference_mode_enabled())
        function = self.functions.get(layout)
        if function is None:
            function = self.functions[layout] = self._function(layout, args, kwargs)
        try:
            return function(self.module, *args, **kwargs)
        except RuntimeError as err:
            if GUARD_FAILED not in str(err) or function == self._traced_call:
                raise
            log.warning("the saved compile of %s refused its inputs (%s); it is compiled the "
                        "usual way", type(self.module).__name__, err)
            self.functions[layout] = self._traced_call
            return self._traced_call(self.module, *args, **kwargs)

    def _function(self, layout: tuple, args: tuple, kwargs: dict) -> Callable[..., Any]:
        import torch

        if not supported():
            return self._fall_back("this torch cannot compile ahead of time")
        keep_tuned_kernels()
        key = _file_key(self.structure, layout, self.tuning)
        if key in _loaded:
            return _loaded[key]
        path = folder() / f"{type(self.module).__name__}-{key}.pt"
        if path.is_file():
            try:
                with path.open("rb") as saved:
                    _loaded[key] = torch.compiler.load_compiled_function(saved)
                os.utime(path)  # in use: kept by _prune
                return _loaded[key]
            except Exception as err:  # noqa: BLE001 -- any unreadable file: compiled anew
                log.warning("the saved compile %s could not be loaded (%s: %s); it is "
                            "compiled again", path.name, type(err).__name__, err)
        _enable()
        try:  # the class's forward, the module its first argument: no guard on this wrapper
            compiled = torch.compile(type(self.module).forward, fullgraph=True, dynamic=False,
                                     backend=BACKEND, **self._options()
                                     ).aot_compile(((self.module, *args), kwargs))
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 -- a graph break or an unsupported construct
            return self._fall_back(f"{type(err).__name__}: {err}")
        _save(compiled, path)
        _prune(path.parent)
        _loaded[key] = compiled
        return compiled

    def _fall_back(self, reason: str) -> Callable[..., Any]:
        name = type(self.module).__name__
        if name not in _told:
            _told.add(name)
            log.warning("%s is compiled the usual way, traced again at every start (%s)",
                        name, reason)
        return self._traced_call

    def _traced_call(self, module: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        if self.traced is None:
            self.traced = torch.compile(module._call_impl, dynamic=False, backend=BACKEND,
                                        **self._options())
        return self.traced(*args, **kwargs)

    def _options(self) -> dict[str, Any]:
        """torch.compile's `options` for this region's tuning: Inductor's settings, which only
        Inductor takes (the bench's eager backend compiles untuned)."""
        return {"options": self.tuning} if self.tuning and BACKEND == "inductor" else {}


def folder() -> Path:
    from models.speed import use_persistent_compile_cache

    return Path(use_persistent_compile_cache()) / "storyreel-precompiled"


def _enable() -> None:
    import torch._dynamo.config as dynamo

    if hasattr(dynamo, "enable_aot_compile"):  # torch 2.11 asks for it; 2.13 has it on
        dynamo.enable_aot_compile = True


def keep_tuned_kernels() -> None:
    """Have a saved compile's kernels launch with the block sizes tuned for them at their first
    run. Inductor keeps each kernel's tuned configuration in its autotune cache and, loading a
    saved compile, looks it up (`CachingAutotuner.recheck_autotune_cache`); torch 2.11's lookup
    skipped kernels saved with one candidate configuration, as the decoder's pointwise kernels
    are, and dropped the mark that coordinate descent had tuned it, so every start timed them all
    again: 40 s of a 61 s second start on an H100 host (pytorch issue 172819, fixed by pull
    173391). Before torch 2.13, which requirements.txt pins and which has the fix, the lookup is
    made as 2.13 makes it; from 2.13 on, torch's own is kept."""
    import torch
    from torch.torch_version import TorchVersion

    if TorchVersion(torch.__version__) >= (2, 13):
        return
    try:
        from torch._inductor.runtime import triton_heuristics
    except ImportError:  # no Triton: no Triton kernels to tune
        return
    autotuner = triton_heuristics.CachingAutotuner
    if autotuner.recheck_autotune_cache is not _recheck_autotune_cache:
        autotuner.recheck_autotune_cache = _recheck_autotune_cache
        log.info("torch %s: saved compiles' kernels keep their tuned configurations "
                 "(torch 2.13's lookup)", torch.__version__)


def _recheck_autotune_cache(self: Any, reload_kernel_from_src: Callable[[], Any]) -> None:
    """torch 2.13's CachingAutotuner.recheck_autotune_cache, for an older torch
    (keep_tuned_kernels): the configuration the autotune cache holds for a loaded kernel, whatever the number of its
    candidates, marked as coordinate descent's when it was (so no launch tunes it again), and
    compiled here when it is none of the loaded ones."""
    from torch._inductor.runtime import triton_heuristics as heuristics

    configs = [result.config for result in self.compile_results]
    cached, _, self.autotune_cache_info = heuristics.check_autotune_cache(
        configs, self.filename, self.inductor_meta)
    if len(cached) != 1:  # nothing cached for this kernel: its first launch tunes it
        return
    best = cached[0]
    tuned = getattr(best, "found_by_coordesc", False)
    wanted = heuristics.triton_config_to_hashable(best)
    for result in self.compile_results:
        if heuristics.triton_config_to_hashable(result.config) == wanted:
            result.config.found_by_coordesc = tuned
            self.compile_results = [result]
            return
    with heuristics.dynamo_timed("CachingAutotuner.slow_precompile_config"):
        if self.fn.fn is None:
            self.fn = reload_kernel_from_src().fn
        self.compile_results = [self._precompile_config(best)]


def _save(compiled: Any, path: Path) -> None:
    """Write the compiled function beside its final name, then rename: a start that stops
    halfway leaves no half file, and two processes never read each other's partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        compiled.save_compiled_function(str(partial))
        os.replace(partial, path)
    except Exception as err:  # noqa: BLE001 -- this process keeps it; the next one compiles
        partial.unlink(missing_ok=True)
        log.warning("the compile of %s could not be saved (%s: %s); the next start compiles "
                    "it again", path.name, type(err).__name__, err)


def _prune(where: Path, unused_days: float = KEEP_DAYS) -> None:
    """Delete saved compiles no start has loaded for `unused_days`: those of an earlier
    Storyreel or torch, a GPU no longer in the machine, a video size no longer made (about
    7 MB each, some 130 MB for one size's turbo and full clips)."""
    import time

    oldest = time.time() - unused_days * 86400
    for saved in where.glob("*.pt"):
        try:
            if saved.stat().st_mtime < oldest:
                saved.unlink()
                log.info("deleted the unused saved compile %s", saved.name)
        except FileNotFoundError:  # another process pruned it first
            continue


def _layout(value: Any) -> Any:
    """What a compiled function is specialised on, for one argument: a tensor's shape, strides,
    dtype, device and grad flag; a plain value itself; a container, each member's."""
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), str(value.dtype), str(value.device),
                value.requires_grad)
    if isinstance(value, (tuple, list)):
        return tuple(_layout(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _layout(v)) for k, v in sorted(value.items()))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__qualname__


def _structure(module: Any) -> str:
    """The module's makeup: every submodule's class, attention processor and plain settings (an
    output scale factor, an epsilon: the compiled code holds their values), every parameter's
    and buffer's shape, dtype and device. Blocks alike in all of it can share compiled code."""
    parts = []
    for name, sub in module.named_modules():
        processor = getattr(sub, "processor", None)
        settings = sorted((key, value) for key, value in vars(sub).items()
                          if not key.startswith("_") and _plain(value))
        parts.append(f"{name}:{type(sub).__module__}.{type(sub).__qualname__}"
                     f":{type(sub).__mro__[1].__qualname__}"
                     f":{type(processor).__qualname__ if processor is not None else ''}"
                     f":{settings!r}")
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tensor.device}"
                     f":{tensor.stride()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _file_key(structure: str, layout: tuple, tuning: dict[str, Any]) -> str:
    from models.speed import compile_identity

    mark = "|".join([structure, repr(layout), compile_identity(), BACKEND,
                     repr(sorted(tuning.items()))])
    return hashlib.sha256(mark.encode()).hexdigest()[:24]
