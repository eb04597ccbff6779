"""RoBERTa Lab: a from-scratch PyTorch RoBERTa, weight for weight compatible with transformers."""

from .config import PRESETS, RobertaConfig
from .model import (
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaModel,
    RobertaOutput,
)

__all__ = [
    "PRESETS",
    "RobertaConfig",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaModel",
    "RobertaOutput",
]
