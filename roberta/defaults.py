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
# The recipe's stages: all, pretrain (assets/mlm: phase 1, then phase 2), everyday (phase 2 only,
# from phase 1's model in assets/mlm), finetune (assets/sentiment from assets/mlm), mlm-card and
# sentiment-card (measure a shipped model again and rewrite its card).
RECIPE_STAGES = ("all", "pretrain", "everyday", "finetune", "mlm-card", "sentiment-card")
TASK_WORDS = {"mlm": "masked language model", "classifier": "sentiment classifier"}


def assets_dir() -> Path:
    """$ROBERTA_LAB_ASSETS if set, else the repository's assets/."""
    override = os.environ.get(ASSETS_ENV)
    return Path(override).expanduser() if override else REPO_ASSETS


def default_model_dir(task: str) -> Path:
    """task: "mlm" or "classifier"."""
    if task not in ("mlm", "classifier"):
        raise ValueError(f"task must be 'mlm' or 'classifier', got {task!r}")
    return assets_dir() / (MLM_SUBDIR if task == "mlm" else CLASSIFIER_SUBDIR)


class DefaultModelMissing(FileNotFoundError):
    """The embedded default cannot be used: `problem` says why, the message also how to fix it."""

    def __init__(self, task: str, problem: str):
        self.problem = problem
        super().__init__(f"The embedded {TASK_WORDS[task]} is missing: {problem}. Make it with "
                         f"`{RECIPE_COMMAND}`, or train one in the app.")


def load_default(task: str, directory: Path | None = None):
    """(model, tokenizer) of the embedded default for `task` (from `directory`, by default
    default_model_dir(task)), in eval mode on the CPU; DefaultModelMissing when it is absent or
    unusable: unreadable, saved for another task, or its tokenizer larger than its model."""
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification
    from .tokenizer import RobertaTokenizer

    directory = directory or default_model_dir(task)
    if not directory.is_dir():
        raise DefaultModelMissing(task, f"the folder {directory} does not exist")
    cls = RobertaForMaskedLM if task == "mlm" else RobertaForSequenceClassification
    try:
        model = cls.from_pretrained(directory, trusted=True)  # the host's own files
        tokenizer = RobertaTokenizer.from_pretrained(directory)
    except (ValueError, OSError) as err:
        raise DefaultModelMissing(task, f"{directory} could not be loaded ({err})") from err
    if getattr(model, "newly_initialized_keys", None):
        raise DefaultModelMissing(task, f"{directory} holds no trained {TASK_WORDS[task]} head "
                                        f"(it was saved for another task)")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise DefaultModelMissing(task, f"the tokenizer in {directory} has "
                                        f"{tokenizer.vocab_size} tokens but the model only "
                                        f"{model.config.vocab_size}")
    return model.eval(), tokenizer
