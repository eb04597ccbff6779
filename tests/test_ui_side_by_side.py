"""Fill-mask and Sentiment compare two models on the same input, in adjacent columns:
/fill_mask_compare and /classify_compare through gradio_client with only the text, checked
against the models run here independently."""

from __future__ import annotations

import html
import zipfile

import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from roberta.config import RobertaConfig
from roberta.inference import classify, fill_mask
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import registry

MASKED = "The food <mask> good and the coffee was <mask>."


def app_error(call) -> str:
    with pytest.raises(AppError) as caught:
        call()
    message = html.unescape(str(caught.value))
    assert "Traceback" not in message and 'File "' not in message, message
    return message


def test_fill_mask_compare_with_only_the_text(client, tiny_assets):
    table = client.predict(MASKED, api_name="/fill_mask_compare")[0]
    headers = table["headers"]
    # Default pair: the embedded model, and (no model of this session yet) the next on offer.
    assert headers == ["mask", "rank", "A: Embedded masked LM", "A probability",
                       f"B: {registry.STRUCTURED_START_NAME}", "B probability"]
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    embedded = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    expected_a = fill_mask(embedded, tokenizer, MASKED, top_k=5)
    expected_b = fill_mask(registry.structured_start().model, tokenizer, MASKED, top_k=5)
    rows = table["data"]
    assert len(rows) == 10  # 2 masks × top 5, side by side
    for row in rows:
        mask, rank = row[0] - 1, row[1] - 1
        a = expected_a.predictions[mask].candidates[rank]
        b = expected_b.predictions[mask].candidates[rank]
        assert row[2] == a.token.replace(" ", "␣") and row[3] == pytest.approx(a.probability,
                                                                               abs=1e-4)
        assert row[4] == b.token.replace(" ", "␣") and row[5] == pytest.approx(b.probability,
                                                                               abs=1e-4)


def test_the_same_model_twice_is_a_plain_error(client):
    message = app_error(lambda: client.predict(MASKED, "Embedded masked LM",
                                               "Embedded masked LM",
                                               api_name="/fill_mask_compare"))
    assert "choose two different models" in message
    assert "empty" in app_error(lambda: client.predict("  ", api_name="/fill_mask_compare"))


def second_classifier(folder, tiny_assets) -> None:
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "sentiment")
    torch.manual_seed(7)
    config = RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                  max_position_embeddings=66,
                                  id2label={0: "negative", 1: "positive"})
    RobertaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_classify_compare_needs_two_then_shows_both(client, tiny_assets, tmp_path):
    text = "The coffee was wonderful and I will buy it again."
    message = app_error(lambda: client.predict(text, api_name="/classify_compare"))
    assert "has only one" in message
    folder = tmp_path / "other"
    second_classifier(folder, tiny_assets)
    upload = tmp_path / "other-classifier.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
    client.predict(handle_file(str(upload)), api_name="/import_checkpoint")
    table, summary = client.predict(text, api_name="/classify_compare")
    assert table["headers"] == ["class", "A: Embedded sentiment classifier",
                                "B: Imported: other-classifier"]
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "sentiment")
    models = [RobertaForSequenceClassification.from_pretrained(p).eval()
              for p in (tiny_assets / "sentiment", folder)]
    expected = [classify(m, tokenizer, [text])[0] for m in models]
    for label, p_a, p_b in table["data"]:
        assert p_a == pytest.approx(expected[0][label], abs=1e-4)
        assert p_b == pytest.approx(expected[1][label], abs=1e-4)
    assert expected[0] != expected[1]
    assert "Embedded sentiment classifier" in summary and "other-classifier" in summary
