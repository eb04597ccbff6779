"""Where the embedded default models live, and how to load them.

`assets/mlm` (masked LM + tokenizer) and `assets/sentiment` (classifier + tokenizer) are written
by `python -m roberta recipe bundled`. The environment variable ROBERTA_LAB_ASSETS points
elsewhere (tests use it), read at call time.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ASSETS = Path(__file__).resolve().parents[1] / "assets"
ASSETS_ENV = "ROBERTA_LAB_ASSETS"
MLM_SUBDIR = "mlm"
CLASSIFIER_SUBDIR = "sentiment"
RECIPE_COMMAND = "python -m roberta recipe bundled"


def assets_dir() -> Path:
    """$ROBERTA_LAB_ASSETS if set, else the repository's assets/."""
    override = os.environ.get(ASSETS_ENV)
    return Path(override).expanduser() if override else REPO_ASSETS


def default_model_dir(task: str) -> Path:
    """task: "mlm" or "classifier"."""
    if task not in ("mlm", "classifier"):
        raise ValueError(f"task must be 'mlm' or 'classifier', got {task!r}")
    return assets_dir() / (MLM_SUBDIR if task == "mlm" else CLASSIFIER_SUBDIR)


def missing_default_message(task: str) -> str:
    what = "masked language model" if task == "mlm" else "sentiment classifier"
    return (f"The embedded {what} is missing (expected in {default_model_dir(task)}). "
            f"Make it with `{RECIPE_COMMAND}`, or train one in the app.")


def load_default(task: str):
    """(model, tokenizer) of the embedded default, in eval mode on the CPU."""
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification
    from .tokenizer import RobertaTokenizer

    directory = default_model_dir(task)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(missing_default_message(task))
    cls = RobertaForMaskedLM if task == "mlm" else RobertaForSequenceClassification
    return cls.from_pretrained(directory), RobertaTokenizer.from_pretrained(directory)
