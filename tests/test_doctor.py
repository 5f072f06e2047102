"""`pipeline doctor` and `models list` on this machine (no GPU, embedded LLM, animatics)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_doctor_passes_here_and_says_how_to_fix_what_is_missing():
    done = run("-m", "pipeline", "doctor")
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith("[FAIL]")]
    assert any(line.startswith("[ok  ] model smollm2-135m") for line in lines)
    assert any(line.startswith("[ok  ] encoder") and "libx264" in line for line in lines)
    svd = next(line for line in lines if "model svd-xt" in line)
    assert svd.startswith("[warn]") and "hf auth login" in svd and "accept the licence" in svd
    assert lines[-1] == "a render can work here"


def test_doctor_warns_with_a_fix_when_chinese_cannot_be_drawn(tmp_path):
    done = run("-m", "pipeline", "doctor", STORYREEL_FONT=str(tmp_path / "nope.ttf"))
    assert done.returncode == 0  # English films still render: a warning, not a failure
    lines = done.stdout.splitlines()
    latin = next(line for line in lines if "] font (Latin):" in line)
    chinese = next(line for line in lines if "] font (Chinese):" in line)
    assert latin.startswith("[ok  ]")
    assert chinese.startswith("[warn]") and "fix: install a CJK font" in chinese


def test_models_list_shows_role_licence_gating_and_presence():
    done = run("-m", "models", "list")
    assert done.returncode == 0
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert rows["svd-xt"].split()[-2:] == ["yes", "no"]   # gated, not present
    assert rows["smollm2-135m"].split()[-2:] == ["no", "yes"]
    assert "stable-video-diffusion-community" in rows["svd-xt"]
