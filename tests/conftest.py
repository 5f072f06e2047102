"""Shared fixtures. Tests import the project from the repository root."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def embedded_chat():
    """The real embedded SmolLM2 model, loaded once for the whole run."""
    from models.llm import EMBEDDED, load_chat_model

    return load_chat_model(EMBEDDED)
