"""The shipped classifier's calibration: a temperature fitted on held-out texts and folded into
the head, so the saved weights themselves give the calibrated probabilities."""

import torch

from roberta.config import RobertaConfig
from roberta.model import RobertaForSequenceClassification
from roberta.recipe_sentiment import fit_temperature, fold_temperature_


def test_the_temperature_undoes_over_confidence():
    torch.manual_seed(0)
    calibrated = torch.randn(4000, 2)
    labels = torch.distributions.Categorical(logits=calibrated).sample()  # true to the logits
    assert abs(fit_temperature(calibrated, labels) - 1.0) < 0.1
    assert abs(fit_temperature(4 * calibrated, labels) - 4.0) < 0.4  # over-confident by 4
    assert abs(fit_temperature(calibrated / 2, labels) - 0.5) < 0.05  # under-confident


def test_folding_the_temperature_divides_the_logits_and_keeps_every_decision():
    torch.manual_seed(0)
    config = RobertaConfig.preset("nano", vocab_size=100, max_position_embeddings=34,
                                  num_labels=2)
    model = RobertaForSequenceClassification(config).eval()
    ids = torch.randint(3, 100, (5, 12))
    before = model(ids).logits
    fold_temperature_(model, 2.5)
    after = model(ids).logits
    assert torch.allclose(after, before / 2.5, atol=1e-6)
    assert torch.equal(after.argmax(-1), before.argmax(-1))
