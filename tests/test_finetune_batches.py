"""Fine-tuning batches of texts of like length: every text once per epoch, each batch padded
far less than a random one, the order fixed by the seed (so a resumed run reads the same)."""

import pytest
import torch

from roberta.data import ClassificationData
from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import FinetuneConfig
from roberta.training.finetuning import Finetuner, classifier_from


def finetuner(tiny_assets, group_by_length: bool, seed: int = 0) -> Finetuner:
    # A quarter long texts (like reviews), the rest short (like tweets), mixed at random.
    # 601 rows (~540 after validation) in batches of 4: three groups of up to 64 batches, and
    # rows left over.
    texts = [("the film was good and the cast was great " * 12 if i % 4 == 0 else "so good")
             + f" {i}" for i in range(601)]
    data = ClassificationData(texts, [i % 2 for i in range(601)], label_names=("neg", "pos"))
    model = classifier_from(RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm"),
                            ["neg", "pos"])
    config = FinetuneConfig(batch_size=4, seq_length=64, seed=seed, device="cpu",
                            group_by_length=group_by_length)
    return Finetuner(model, RobertaTokenizer.from_pretrained(tiny_assets / "mlm"), data, config)


def epoch_batches(tuner: Finetuner, epoch: int = 0) -> list[torch.Tensor]:
    rows = len(tuner.train_split)
    per_epoch = rows // tuner.config.batch_size
    return [tuner.rows_for(epoch * per_epoch + k, rows) for k in range(per_epoch)]


def padded_tokens(tuner: Finetuner, batches) -> int:
    lengths = tuner._train["attention_mask"].sum(1)
    return sum(int(lengths[b].max()) * len(b) for b in batches)


@pytest.mark.parametrize("group", [True, False])
def test_every_text_is_read_once_an_epoch(tiny_assets, group):
    tuner = finetuner(tiny_assets, group)
    for epoch in (0, 1):
        rows = torch.cat(epoch_batches(tuner, epoch))
        whole = len(tuner.train_split) // 4 * 4
        assert len(rows) == whole and len(set(rows.tolist())) == whole


def test_batches_of_like_length_pad_far_less(tiny_assets):
    grouped, plain = finetuner(tiny_assets, True), finetuner(tiny_assets, False)
    assert padded_tokens(grouped, epoch_batches(grouped)) < \
        0.6 * padded_tokens(plain, epoch_batches(plain))
    first, second = epoch_batches(grouped, 0), epoch_batches(grouped, 1)
    assert [b.tolist() for b in first] != [b.tolist() for b in second]  # a new draw each epoch


def test_the_order_is_the_seeds(tiny_assets):
    def order(seed):
        return [b.tolist() for b in epoch_batches(finetuner(tiny_assets, True, seed))]
    assert order(0) == order(0) and order(0) != order(1)
