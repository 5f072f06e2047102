"""The quality voice: Kokoro-82M, loaded from the model store, with its grapheme-to-phoneme
front ends.

    kokoro = load_kokoro("en")                 # None when its weights are not on this machine
    audio, durations = kokoro.synthesize(phonemes, "af_heart")

Nothing here downloads: the weights come through `python -m models download kokoro-82m` (or
`kokoro-82m-zh` for Mandarin), and the English G2P reads words with the spaCy pipeline that
installs with requirements.txt (misaki would otherwise download `en_core_web_sm` at run time).
The model runs on the GPU when there is one, else on the CPU, in float32 (it is small).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import VOICE_MODELS, ModelSpec

log = logging.getLogger(__name__)

RATE = 24000            # Kokoro's output, samples per second
DEFAULT_VOICES = {"en": "af_heart", "zh": "zf_001"}
PREFIXES = {"en": ("af_", "am_", "bf_", "bm_"), "zh": ("zf_", "zm_")}  # voices by language


class VoiceModelMissing(RuntimeError):
    """Kokoro is not installed or its weights are not here; the message says how to get it."""


@dataclass
class Kokoro:
    spec: ModelSpec
    folder: Path
    model: Any              # kokoro.KModel
    language: str

    def synthesize(self, phonemes: str, voice: str) -> tuple[Any, Any]:
        """(audio float tensor at RATE, predicted duration per phoneme token incl. the two pads)."""
        import torch

        pack = _voice_pack(str(self.folder / "voices" / f"{voice}.pt"))
        style = pack[min(len(phonemes), len(pack)) - 1]
        with torch.inference_mode():
            out = self.model(phonemes, style, speed=1.0, return_output=True)
        return out.audio.float().cpu(), out.pred_dur.cpu()


def kokoro_folder(language: str) -> Path | None:
    """The folder holding the language's Kokoro weights, whole, or None when they are not here."""
    from models.download import weights_folder
    from models.store import check_folder

    try:
        folder = weights_folder(VOICE_MODELS[language])
        check_folder(folder, "voice")
    except (OSError, ValueError):  # StoreError is a ValueError; no snapshot is an OSError
        return None
    return folder


def kokoro_available(language: str) -> bool:
    """Kokoro's weights for `language` and the package that runs them are both here."""
    if kokoro_folder(language) is None:
        return False
    try:
        import kokoro  # noqa: F401
    except ImportError:
        return False
    return True


def kokoro_voices(language: str) -> list[str]:
    """The language's Kokoro voices on this machine (their style files; nothing is loaded)."""
    folder = kokoro_folder(language)
    if folder is None:
        return []
    return sorted(p.stem for p in (folder / "voices").glob("*.pt")
                  if p.stem.startswith(PREFIXES[language]))


@functools.cache
def load_kokoro(language: str) -> Kokoro:
    """The language's Kokoro model, loaded once per process; raises VoiceModelMissing."""
    from models.registry import how_to_get

    spec = VOICE_MODELS[language]
    try:
        from kokoro import KModel
        from loguru import logger

        logger.disable("kokoro")  # it logs every phoneme string at debug level to stderr
    except ImportError:
        raise VoiceModelMissing("the kokoro package is not installed: pip install -r "
                                "requirements.txt") from None
    folder = kokoro_folder(language)
    if folder is None:
        raise VoiceModelMissing(f"{spec.name} is not on this machine: {how_to_get(spec)}")
    import torch

    checkpoint = folder / spec.weights_file if spec.weights_file and \
        (folder / spec.weights_file).is_file() else sorted(folder.glob("*.pth"))[0]
    model = KModel(repo_id=spec.repo_id, config=str(folder / "config.json"),
                   model=str(checkpoint)).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    log.info("loaded %s from %s on %s", spec.name, folder, device)
    return Kokoro(spec, folder, model, language)


@functools.lru_cache(maxsize=16)
def _voice_pack(path: str) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


@functools.cache
def english_g2p() -> Any:
    """misaki's English G2P over spaCy's en_core_web_sm from the installed wheel, with eSpeak NG
    (from espeakng-loader) reading the words its lexicon lacks."""
    from misaki import en, espeak

    from models.language import english_parser

    g2p = en.G2P.__new__(en.G2P)  # its __init__ would download en_core_web_sm
    g2p.version, g2p.british, g2p.unk = None, False, ""
    g2p.nlp = english_parser()
    g2p.lexicon = en.Lexicon(False)
    g2p.fallback = espeak.EspeakFallback(british=False)
    return g2p


@functools.cache
def chinese_g2p() -> Any:
    """misaki's Mandarin G2P in the v1.1 (Kokoro-82M-v1.1-zh) phoneme set."""
    from misaki import zh

    return zh.ZHG2P(version="1.1", unk="", en_callable=lambda text: english_g2p()(text)[0])
