"""`python -m pipeline doctor`: what a first render needs, one line per check, with the fix.

It exits 1 when a render cannot work here (no H.264 encoder, no font for subtitles, outputs not
writable, too little disk). Missing video weights or no GPU are warnings: the animatic backend
still renders.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

MIN_FREE_DISK_GB = 2.0
PACKAGES = ("torch", "transformers", "diffusers", "accelerate", "xgrammar", "av", "gradio",
            "tinydb", "pillow")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True   # False: a warning, rendering still works without it

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "warn")
        return f"[{mark}] {self.name}: {self.detail}" + (f" -> fix: {self.fix}" if self.fix
                                                           and not self.ok else "")


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, sys.version.split()[0], "use Python 3.11 or newer")


def check_packages() -> Check:
    found, missing = [], []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    return Check("packages", not missing, ", ".join(found) + (f"; missing: {', '.join(missing)}"
                                                           if missing else ""),
                 "bash scripts/setup.sh")


CUDA_TORCH_FIX = ("install a CUDA build of torch as README's 'Using an NVIDIA GPU' says (Linux: "
                  "`.venv/bin/pip install --force-reinstall torch==2.13.0` from PyPI; Windows: "
                  "add `--index-url https://download.pytorch.org/whl/cu128`), then check it: "
                  "python -c \"import torch; print(torch.cuda.is_available())\" prints True")


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU and driver, asked without torch."""
    return (Path("/proc/driver/nvidia/version").is_file() or Path("/dev/nvidia0").exists()
            or shutil.which("nvidia-smi") is not None)


def check_gpu() -> Check:
    import torch

    from models.memory import free_vram_gib, pick_profile

    if not torch.cuda.is_available():
        if nvidia_gpu_present():
            build = "torch is a CPU build" if torch.version.cuda is None else \
                f"torch (CUDA {torch.version.cuda}) cannot use it (driver too old?)"
            return Check("gpu", False, f"an NVIDIA GPU is here but {build} {torch.__version__}: "
                                       f"scenes render as animatics", CUDA_TORCH_FIX,
                         required=False)
        return Check("gpu", False, "no CUDA GPU: scenes render as animatics",
                     "install a CUDA build of torch on a machine with an NVIDIA GPU",
                     required=False)
    return Check("gpu", True, f"{torch.cuda.get_device_name(0)}, {free_vram_gib():.1f} GiB free, "
                              f"profile {pick_profile('auto').name}")


def check_models() -> list[Check]:
    from models.download import integrity_problem
    from models.registry import KNOWN_MODELS, how_to_get
    from models.status import model_present

    checks = []
    for m in KNOWN_MODELS:
        present = model_present(m)
        problem = integrity_problem(m) if present else None
        detail = f"{m.role}, {m.repo_id}" + (f": {problem}" if problem else "")
        fix = how_to_get(m) + (" (a download resumes and fetches only what is missing)"
                               if problem else "")
        checks.append(Check(f"model {m.name}", present and not problem, detail, fix,
                            required=False))
    return checks


def check_encoder() -> Check:
    import av

    ok = "libx264" in av.codecs_available and "aac" in av.codecs_available
    return Check("encoder", ok, f"PyAV {av.__version__} with FFmpeg, libx264 and aac "
                                f"{'available' if ok else 'missing'}",
                 "pip install --force-reinstall av (its wheels bundle FFmpeg with x264)")


def check_fonts() -> list[Check]:
    """Latin text needs the font that comes with the install; Chinese text a system CJK font
    (without one, English films still render, Chinese ones are refused before any work)."""
    from pipeline.fonts import INSTALL_HINT, FontMissing, cjk_font_path, latin_font_path

    try:
        latin = Check("font (Latin)", True, f"{latin_font_path().name}, installed with Storyreel")
    except FontMissing as err:
        latin = Check("font (Latin)", False, str(err), "bash scripts/setup.sh")
    try:
        chinese = Check("font (Chinese)", True, str(cjk_font_path()))
    except FontMissing as err:
        chinese = Check("font (Chinese)", False, f"{str(err).split(';')[0]}: English films "
                        f"render, Chinese ones need one", INSTALL_HINT, required=False)
    return [latin, chinese]


def check_outputs(root: Path) -> list[Check]:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
        writable = Check("outputs", True, f"{root} is writable")
    except OSError as err:
        writable = Check("outputs", False, f"{root} is not writable ({err.strerror})",
                         "choose another folder with STORYREEL_OUTPUTS, or fix its permissions")
    free_gb = shutil.disk_usage(root if root.exists() else root.parent).free / 1e9
    disk = Check("disk", free_gb >= MIN_FREE_DISK_GB, f"{free_gb:.1f} GB free",
                 f"free at least {MIN_FREE_DISK_GB:g} GB")
    return [writable, disk]


def run_checks(outputs: Path) -> list[Check]:
    checks: list[Check] = [check_python(), check_packages()]
    steps: list[Callable[[], Check | list[Check]]] = [
        check_gpu, check_encoder, check_fonts, check_models, lambda: check_outputs(outputs)]
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def doctor(outputs: Path) -> int:
    checks = run_checks(outputs)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.required and not c.ok]
    print("a render can work here" if not failed else
          f"a render cannot work until {len(failed)} problem(s) are fixed")
    return 1 if failed else 0
