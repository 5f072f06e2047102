"""What the renderer reports while it works: plain dataclasses, rendered by the CLI and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SceneStarted:
    scene: int            # 1-based
    total: int
    backend: str          # "svd" or "animatic"
    worker: str = ""      # who renders it: "this machine", or a Ray worker's node and GPU


@dataclass(frozen=True)
class StepProgress:
    scene: int
    stage: str            # "keyframe", "video" or "encode"
    step: int             # steps done so far in this stage
    steps: int            # steps this stage takes


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not a failure (a fallback, a profile change)."""

    message: str
    scene: int | None = None


@dataclass(frozen=True)
class SceneDone:
    scene: int
    clip: Path            # scene_NN.mp4
    keyframe: Path        # the first frame the clip was made from (PNG)
    last_frame: Path      # the clip's last frame (PNG), for a following "continue" scene
    info: Path            # scene_NN.json: models, seed, parameters, timings
    seconds: float        # wall time this scene took
    backend: str          # "svd" or "animatic"


@dataclass(frozen=True)
class CastDrawn:
    name: str             # the cast member whose picture was drawn from their look
    picture: Path         # the picture (PNG), kept with the job
    reference: str        # how the storyboard names it now (relative to its folder when inside)


@dataclass(frozen=True)
class SceneFailed:
    scene: int
    message: str


@dataclass(frozen=True)
class RenderFinished:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0


Event = (SceneStarted | StepProgress | Notice | CastDrawn | SceneDone | SceneFailed
         | RenderFinished)


def describe(event: Event) -> str:
    """One line for a terminal or a log."""
    match event:
        case SceneStarted(scene, total, backend, worker):
            where = f" on {worker}" if worker and worker != "this machine" else ""
            return f"scene {scene}/{total}: started ({backend}){where}"
        case StepProgress(scene, stage, step, steps):
            return f"scene {scene}: {stage} step {step}/{steps}"
        case Notice(message, scene):
            return f"scene {scene}: note: {message}" if scene else f"note: {message}"
        case SceneDone(scene, clip, _, _, _, seconds, backend):
            return f"scene {scene}: done in {seconds:.1f} s ({backend}) -> {clip}"
        case CastDrawn(name, picture, _):
            return f"cast: {name}'s picture drawn from their look -> {picture}"
        case SceneFailed(scene, message):
            return f"scene {scene}: FAILED: {message}"
        case RenderFinished(done, failed, cancelled, seconds):
            state = "cancelled" if cancelled else "finished"
            return (f"render {state} in {seconds:.1f} s: {len(done)} scene(s) done"
                    + (f", failed: {', '.join(map(str, failed))}" if failed else ""))
    return str(event)
