"""Fetching a known model's weights: from the Hugging Face hub (or a mirror) or from ModelScope.

`download(name)` checks the free disk space first, then fetches only the files still missing,
reporting bytes through `on_progress`. An interrupted download resumes where it stopped the next
time (Hugging Face keeps `.incomplete` files in its cache; the ModelScope client keeps its own).

- Hugging Face: `huggingface_hub` does the fetching, so HF_HOME (where), HF_ENDPOINT (a mirror,
  or `endpoint=`) and HF_TOKEN (gated repositories) work as everywhere else.
- ModelScope: a small client of its public file API (`/api/v1/models/ID/repo/files` and
  `/api/v1/models/ID/repo?FilePath=`), for users the Hugging Face hub does not reach. Files go
  under MODELSCOPE_CACHE (default ~/.cache/modelscope/hub/models) and the folder is registered
  (models/store.py) so the loaders find it.
Nothing here imports torch: the studio's System tab calls it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import EMBEDDED_LLM, ModelSpec, base_of, how_to_get
from models.store import (StoreError, check_base_parts, check_folder, layout, register,
                          registered_folder, spec_or_error)

log = logging.getLogger(__name__)

# diffusers repositories also carry single-file checkpoints, fp16 copies and old .bin files;
# the loaders need only the component folders' configs and safetensors weights.
PIPELINE_FILES = ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors", "*/*.model"]
PIPELINE_SKIP = ["*.fp16.safetensors", "*.bin", "*.onnx*", "*.msgpack", "*.ckpt"]
# What a UNet-only (turbo) model takes from its base pipeline: all but the base's UNet weights.
BASE_PARTS = ["model_index.json", "unet/config.json", "image_encoder/*", "vae/*",
              "feature_extractor/*", "scheduler/*"]
MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"
HEADROOM = 1.05  # a margin over the files' own size (the cache's links, the file system)


@dataclass(frozen=True)
class Progress:
    done_bytes: int
    total_bytes: int
    file: str


ProgressCallback = Callable[[Progress], None]


class DownloadError(Exception):
    """A download that cannot go on; the message says why and what to do."""


def download(name: str, source: str = "hf", endpoint: str | None = None,
             on_progress: ProgressCallback | None = None) -> Path:
    """Fetch model `name` (a short name or hub id from `python -m models list`); returns its folder."""
    spec = spec_or_error(name)
    if spec is EMBEDDED_LLM:
        raise DownloadError(f"{spec.name} ships as a Python package, not a hub download: "
                            f"{how_to_get(spec)}")
    report = on_progress or (lambda _p: None)
    if source == "hf":
        return _from_huggingface(spec, endpoint, report)
    if source == "modelscope":
        return _from_modelscope(spec, endpoint, report)
    raise DownloadError(f"unknown source {source!r}: use hf or modelscope")


def check_disk(folder: Path, needed: int) -> None:
    """Refuse before fetching anything when `needed` bytes will not fit where they go."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * HEADROOM > free:
        raise DownloadError(f"not enough disk space in {probe}: the download needs "
                            f"{_gb(needed * HEADROOM)} and {_gb(free)} is free; free some space "
                            f"or point HF_HOME (or MODELSCOPE_CACHE) at a larger disk")


def integrity_problem(spec: ModelSpec) -> str | None:
    """What is wrong with a model's weights on this machine, or None when they are whole (a
    UNet-only model: its UNet and the base pipeline's other parts)."""
    if spec is EMBEDDED_LLM:
        return None
    problem = _folder_problem(spec, _patterns(spec), lambda f: check_folder(f, layout(spec)))
    base = base_of(spec)
    if problem or base is None:
        return problem
    base_problem = _folder_problem(base, _base_patterns(), check_base_parts)
    return f"{base.name}, whose image encoder and VAE it uses: {base_problem}" \
        if base_problem else None


def weights_folder(spec: ModelSpec) -> Path:
    """Where a model's files are: its registered folder, else its Hugging Face cache snapshot
    (raises OSError/ValueError when neither is here)."""
    return registered_folder(spec.repo_id) or _cached_snapshot(spec.repo_id, _patterns(spec))


def _folder_problem(spec: ModelSpec, patterns: dict[str, Any], check: Callable[[Path], None]
                    ) -> str | None:
    folder = registered_folder(spec.repo_id)
    if folder is None:
        try:
            folder = _cached_snapshot(spec.repo_id, patterns)
        except (OSError, ValueError) as err:
            return f"the cached copy is incomplete ({str(err).splitlines()[0][:120]})"
    try:
        check(folder)
    except StoreError as err:
        return str(err)
    return None


def _patterns(spec: ModelSpec) -> dict[str, Any]:
    if spec.unet_file:
        return {"allow_patterns": [spec.unet_file]}
    if spec.role in ("video", "keyframe"):
        return {"allow_patterns": PIPELINE_FILES, "ignore_patterns": PIPELINE_SKIP}
    if spec.role == "voice":
        return {"allow_patterns": ["config.json", spec.weights_file or "*.pth", "voices/*.pt"]}
    if spec.role == "adapter":
        return {"allow_patterns": [spec.weights_file, f"{spec.encoder_folder}/config.json",
                                   f"{spec.encoder_folder}/model.safetensors"]}
    return {}


def _base_patterns() -> dict[str, Any]:
    return {"allow_patterns": BASE_PARTS, "ignore_patterns": PIPELINE_SKIP}


def _cached_snapshot(repo_id: str, patterns: dict[str, Any]) -> Path:
    """The model's folder in the Hugging Face cache; raises unless every file is there."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, local_files_only=True, **patterns))


# ---- Hugging Face ----------------------------------------------------------------------------

def _from_huggingface(spec: ModelSpec, endpoint: str | None, report: ProgressCallback) -> Path:
    """The model's files (a UNet-only model: its UNet file, and its base's other parts unless
    the base is already here)."""
    folder = _hub_snapshot(spec, _patterns(spec), endpoint, report)
    check_folder(folder, layout(spec))
    base = base_of(spec)
    if base is not None and _folder_problem(base, _base_patterns(), check_base_parts):
        check_base_parts(_hub_snapshot(base, _base_patterns(), endpoint, report))
    return folder


def _hub_snapshot(spec: ModelSpec, patterns: dict[str, Any], endpoint: str | None,
                  report: ProgressCallback) -> Path:
    from huggingface_hub import constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (DryRunError, GatedRepoError, HfHubHTTPError,
                                        RepositoryNotFoundError)

    where = endpoint or constants.ENDPOINT  # HF_ENDPOINT, read by huggingface_hub itself
    try:  # already whole in the cache: nothing to ask the hub
        return _cached_snapshot(spec.repo_id, patterns)
    except (OSError, ValueError) as err:
        log.info("%s is not (wholly) cached yet: %s", spec.repo_id, err)
    try:
        plan = snapshot_download(spec.repo_id, endpoint=endpoint, dry_run=True, **patterns)
        missing = [f for f in plan if f.will_download]
        total = sum(f.file_size or 0 for f in missing)
        check_disk(Path(constants.HF_HUB_CACHE), total)
        log.info("%s: %d of %d files to fetch (%s) from %s", spec.repo_id, len(missing),
                 len(plan), _gb(total), where)
        done = 0
        for info in missing:
            bar = _bar_class(report, done, total, info.filename)
            hf_hub_download(spec.repo_id, info.filename, endpoint=endpoint, tqdm_class=bar)
            done += info.file_size or 0
            report(Progress(done, total, info.filename))
        folder = Path(snapshot_download(spec.repo_id, endpoint=endpoint, **patterns))
    except (GatedRepoError, RepositoryNotFoundError, DryRunError, HfHubHTTPError) as err:
        raise DownloadError(_hub_refusal(spec, where, err)) from None
    except OSError as err:  # connection dropped, disk trouble: what is fetched so far is kept
        raise DownloadError(f"download of {spec.repo_id} from {where} stopped: {err}; run the "
                            f"same command again to resume where it stopped") from None
    return folder


def _hub_refusal(spec: ModelSpec, where: str, err: BaseException) -> str:
    from huggingface_hub.errors import GatedRepoError

    cause = err.__cause__ or err  # a dry run wraps the hub's own error
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    gated = isinstance(cause, GatedRepoError) or status in (401, 403)
    if gated:
        return (f"{spec.repo_id} is gated on {where} ({status or 'refused'}): 1) accept its licence "
                f"at https://huggingface.co/{spec.repo_id} while logged in, 2) run `hf auth login` "
                f"(or set HF_TOKEN) with a token that can read it, 3) run this command again")
    return f"cannot fetch {spec.repo_id} from {where}: {str(cause).splitlines()[0][:200]}"


def _bar_class(report: ProgressCallback, before: int, total: int, filename: str) -> type:
    """A tqdm stand-in that turns huggingface_hub's byte counts into Progress reports."""
    from tqdm.auto import tqdm

    class Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.fetched = int(kwargs.get("initial") or 0)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            self.fetched += int(n or 0)
            report(Progress(before + self.fetched, total, filename))
            return None

    return Bar


# ---- ModelScope ------------------------------------------------------------------------------

def modelscope_folder(model_id: str) -> Path:
    root = os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope" / "hub"
    return Path(root) / "models" / model_id


def _from_modelscope(spec: ModelSpec, endpoint: str | None, report: ProgressCallback) -> Path:
    import httpx

    if not spec.modelscope_id:
        raise DownloadError(f"{spec.name} is not published on ModelScope; use --source hf, with "
                            f"HF_ENDPOINT set to a mirror if the hub is slow or blocked")
    domain = os.environ.get("MODELSCOPE_DOMAIN")
    base = (endpoint or (f"https://{domain}" if domain else MODELSCOPE_ENDPOINT)).rstrip("/")
    api = f"{base}/api/v1/models/{spec.modelscope_id}/repo"
    headers = {"Authorization": f"Bearer {os.environ['MODELSCOPE_API_TOKEN']}"} \
        if os.environ.get("MODELSCOPE_API_TOKEN") else {}
    folder = modelscope_folder(spec.modelscope_id)
    try:
        with httpx.Client(headers=headers, timeout=httpx.Timeout(30.0, read=120.0),
                          follow_redirects=True) as client:
            listing = client.get(f"{api}/files", params={"Revision": "master", "Recursive": "true"})
            if listing.status_code in (401, 403):
                raise DownloadError(f"ModelScope refused {spec.modelscope_id} ({listing.status_code}):"
                                    f" accept its licence on https://www.modelscope.cn/models/"
                                    f"{spec.modelscope_id}, set MODELSCOPE_API_TOKEN, then retry")
            listing.raise_for_status()
            files = [f for f in listing.json()["Data"]["Files"] if f.get("Type") != "tree"
                     and _wanted(spec, f["Path"])]
            missing = [f for f in files if not _have(folder / f["Path"], f)]
            total = sum(int(f.get("Size") or 0) for f in missing)
            check_disk(folder, total - sum(_partial(folder / f["Path"]) for f in missing))
            done = 0
            for entry in missing:
                done = _fetch(client, api, folder, entry, done, total, report)
    except httpx.HTTPError as err:
        raise DownloadError(f"download of {spec.modelscope_id} from {base} stopped: {err}; run "
                            f"the same command again to resume where it stopped") from None
    except (KeyError, ValueError) as err:
        raise DownloadError(f"{base} did not answer like a ModelScope hub ({err})") from None
    check_folder(folder, layout(spec))
    register(spec.repo_id, folder)
    return folder


def _wanted(spec: ModelSpec, path: str) -> bool:
    if spec.role not in ("video", "keyframe"):
        return True
    from fnmatch import fnmatch

    return (any(fnmatch(path, p) for p in PIPELINE_FILES)
            and not any(fnmatch(path, p) for p in PIPELINE_SKIP))


def _have(path: Path, entry: dict[str, Any]) -> bool:
    return path.is_file() and path.stat().st_size == int(entry.get("Size") or -1)


def _partial(path: Path) -> int:
    part = path.with_name(path.name + ".incomplete")
    return part.stat().st_size if part.is_file() else 0


def _fetch(client: Any, api: str, folder: Path, entry: dict[str, Any], done: int, total: int,
           report: ProgressCallback) -> int:
    """Fetch one file into `folder`, resuming a partial one; returns the new byte count."""
    target = folder / entry["Path"]
    part = target.with_name(target.name + ".incomplete")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = _partial(target)
    headers = {"Range": f"bytes={have}-"} if have else {}
    params = {"Revision": "master", "FilePath": entry["Path"]}
    with client.stream("GET", api, params=params, headers=headers) as response:
        response.raise_for_status()
        if have and response.status_code != 206:  # the server sent it all again
            have = 0
        done += have
        with open(part, "ab" if have else "wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                done += len(chunk)
                report(Progress(done, total, entry["Path"]))
    expected = entry.get("Sha256")
    if expected and _sha256(part) != expected:
        part.unlink()
        raise DownloadError(f"{entry['Path']} arrived damaged (checksum mismatch); it was "
                            f"removed, run the same command again")
    os.replace(part, target)
    return done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
