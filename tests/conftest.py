"""Shared fixtures. Tests import the project from the repository root."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Command-line jobs record themselves in History: keep the tests' jobs out of outputs/.
os.environ.setdefault("STORYREEL_OUTPUTS", tempfile.mkdtemp(prefix="storyreel-test-outputs-"))


@pytest.fixture(scope="session")
def embedded_chat():
    """The real embedded SmolLM2 model, loaded once for the whole run."""
    from models.llm import EMBEDDED, load_chat_model

    return load_chat_model(EMBEDDED)


@pytest.fixture()
def studio_plans_by_rule(monkeypatch):
    """The studio's Plan button uses the rule-based planner (the product's own, used when no
    language model is wanted): for tests about rendering, queues, files and accounts, where a
    storyboard is only the way in. The language model's own tests (tests/test_planner.py,
    tests/test_premise.py, and the studio's and browser's plan-edit-render tests) still plan
    with it; on 2 CPU cores each of its plans costs 5-25 s."""
    from dataclasses import dataclass

    import ui.studio
    from pipeline.planner import PlanRequest

    @dataclass
    class RulePlanRequest(PlanRequest):
        use_model: bool = False

    monkeypatch.setattr(ui.studio, "PlanRequest", RulePlanRequest)


@pytest.fixture(scope="session")
def tiny_svd(tmp_path_factory) -> Path:
    """A tiny random StableVideoDiffusionPipeline saved in diffusers format."""
    from models.random_init import build_svd

    return build_svd(tmp_path_factory.mktemp("tiny-svd"))


@pytest.fixture()
def answered_draws(monkeypatch) -> list[tuple]:
    """The shapes of the draws the noise-ahead lever answers from its plan (models/noise.py),
    in the order the pipeline takes them (a stood-down plan answers none)."""
    from models import noise

    answered: list[tuple] = []
    take = noise.NoiseAhead.take

    def counted(self, shape, *rest):
        drawn = take(self, shape, *rest)
        if drawn is not None:
            answered.append(shape)
        return drawn

    monkeypatch.setattr(noise.NoiseAhead, "take", counted)
    return answered


@pytest.fixture()
def keyframe_model_compiled(tmp_path, monkeypatch) -> None:
    """The keyframe model placed as on a GPU, where the fast profile compiles it (here nothing
    is compiled: only what the render says and remembers about it), with a compile cache of
    this test's own."""
    import models.diffusion

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    real = models.diffusion.apply_profile

    def as_on_a_gpu(pipe, profile):  # what _place reports for a text-to-image model there
        levers = real(pipe, profile)
        video = type(pipe.unet).__name__ == "UNetSpatioTemporalConditionModel"
        return levers if video else ["none offload", models.diffusion.COMPILED_KEYFRAME_MODEL]
    monkeypatch.setattr(models.diffusion, "apply_profile", as_on_a_gpu)


@pytest.fixture(scope="session")
def tiny_text_to_image(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion pipeline saved in diffusers format."""
    from models.random_init import build_text_to_image

    return build_text_to_image(tmp_path_factory.mktemp("tiny-t2i"))


def make_board(*scenes: dict, title: str = "Test film"):
    """A storyboard from partial scene dicts (missing fields get sensible values)."""
    from pipeline.storyboard import Storyboard

    full = []
    for k, scene in enumerate(scenes, start=1):
        base = {"description": f"Scene {k} of the test film.", "visual_prompt": f"a test scene {k}",
                "camera": "static", "motion": "medium", "duration": 1.0, "transition": "cut",
                "keyframe": None, "seed": 3}
        base.update(scene)
        full.append(base)
    return Storyboard.from_dict({"title": title, "style": "test", "scenes": full})
