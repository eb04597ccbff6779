"""Figures and analyses behind the Attention, Masking and Model tabs (no app, no browser)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from roberta.config import RobertaConfig
from roberta.masking import MaskingConfig
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.viz import attention as attention_viz
from roberta.viz import bertviz_offline
from roberta.viz import masking as masking_viz

TOKENS = ["<s>", "The", " cat", " sat", "</s>"]


def uniform(L=2, nh=3, T=5):
    return torch.full((L, nh, T, T), 1.0 / T)


def identity(L=2, nh=3, T=5):
    return torch.eye(T).expand(L, nh, T, T).clone()


# --- attention statistics ------------------------------------------------------------------

def test_summary_of_uniform_attention():
    summary = attention_viz.head_summary(uniform(), TOKENS)
    assert torch.allclose(summary.entropy, torch.full((2, 3), math.log2(5)))
    assert torch.allclose(summary.to_bos, torch.full((2, 3), 0.2))
    assert torch.allclose(summary.to_eos, torch.full((2, 3), 0.2))
    # mean |i - j| over a 5×5 grid = 40 / 25
    assert torch.allclose(summary.mean_distance, torch.full((2, 3), 40 / 25))


def test_summary_of_self_attention_and_switched_off_heads():
    maps = identity()
    maps[1, 2] = 0  # switched off
    summary = attention_viz.head_summary(maps, TOKENS)
    assert summary.entropy[0].abs().max() < 1e-6
    assert summary.mean_distance[0].abs().max() < 1e-6
    assert torch.allclose(summary.to_bos[0], torch.full((3,), 0.2))  # only <s> looks at <s>
    assert not summary.active[1, 2] and summary.active[1, :2].all()
    assert math.isnan(summary.entropy[1, 2])


def test_rollout_rows_sum_to_one_and_identity_passes_through():
    assert torch.allclose(attention_viz.attention_rollout(identity()), torch.eye(5))
    rollout = attention_viz.attention_rollout(torch.softmax(torch.randn(3, 2, 5, 5), -1))
    assert torch.allclose(rollout.sum(-1), torch.ones(5), atol=1e-5)
    # one layer of uniform attention: half stays, half spreads evenly
    one = attention_viz.attention_rollout(uniform(L=1))
    assert torch.allclose(one, 0.5 * torch.eye(5) + 0.5 / 5)


def test_rollout_ignores_switched_off_heads():
    maps = torch.cat([identity(L=1, nh=1), torch.zeros(1, 1, 5, 5)], dim=1)  # head 2 off
    assert torch.allclose(attention_viz.attention_rollout(maps), torch.eye(5))


def test_figures_label_repeated_tokens_by_position():
    tokens = ["<s>", "the", " the", "the", "</s>"]
    figure = attention_viz.head_heatmap(uniform(), tokens, layer=2, head=3)
    assert list(figure.layout.xaxis.tickvals) == [0, 1, 2, 3, 4]
    # escaped, since plotly reads labels as HTML
    assert list(figure.layout.xaxis.ticktext) == ["&lt;s&gt;", "the", "␣the", "the",
                                                  "&lt;/s&gt;"]
    with pytest.raises(ValueError, match="layer must be"):
        attention_viz.head_heatmap(uniform(), tokens, layer=3, head=1)
    summary = attention_viz.summary_figure(attention_viz.head_summary(uniform(), tokens), 5)
    assert len(summary.data) == 4
    assert attention_viz.rollout_heatmap(uniform(), tokens).data[0].z is not None


# --- bertviz, offline ----------------------------------------------------------------------

def test_bertviz_document_is_self_contained():
    document = bertviz_offline.head_view_document(uniform(), TOKENS)
    assert "require.min.js" not in document
    assert not re.search(r"<script[^>]+src=", document)  # every script is inline
    assert "jQuery" in document and "d3" in document
    assert document.index("jQuery") < document.index("requirejs([")  # libraries load first
    model = bertviz_offline.model_view_document(uniform(), TOKENS)
    assert "require.min.js" not in model and not re.search(r"<script[^>]+src=", model)


def test_tokens_cannot_break_out_of_bertviz_script():
    benign = bertviz_offline.head_view_document(uniform(T=5), TOKENS).lower()
    tokens = ["<s>", "</script><script>alert(1)</script>", "<!--", "</SCRIPT >", "</s>"]
    document = bertviz_offline.head_view_document(uniform(T=5), tokens)
    for marker in ("<script", "</script", "<!--"):
        assert document.lower().count(marker) == benign.count(marker)
    assert "\\x3c/script>\\x3cscript>alert(1)" in document


def test_iframe_escapes_the_document():
    html = bertviz_offline.head_view_html(uniform(), TOKENS)
    assert html.startswith('<iframe class="bertviz-frame"')
    assert "<script" not in html  # only as &lt;script inside srcdoc
    assert "&lt;script" in html


def test_iframe_is_sandboxed_and_reports_its_height_to_the_page():
    """Scripts run in an opaque origin (no allow-same-origin), so the frame cannot reach the page
    and cannot size itself: it posts its height, which the page's listener applies."""
    import re

    html = bertviz_offline.model_view_html(uniform(), TOKENS)
    assert re.search(r'<iframe [^>]*sandbox="allow-scripts"', html)
    assert "allow-same-origin" not in html
    assert "frameElement" not in html and "bertvizFrameHeight" in html
    listener = bertviz_offline.FRAME_RESIZER_HEAD
    assert "iframe.bertviz-frame" in listener and "event.source" in listener


def test_bertviz_checks_shapes():
    with pytest.raises(ValueError, match="tokens"):
        bertviz_offline.head_view_document(uniform(), TOKENS[:3])
    with pytest.raises(ValueError, match="layers, heads"):
        bertviz_offline.head_view_document(torch.ones(3, 5, 5), TOKENS)


def test_javascript_comes_from_installed_packages():
    assert "jQuery" in bertviz_offline.jquery_js()[:2000]
    assert "d3js.org" in bertviz_offline.d3_js()[:500] and "v5" in bertviz_offline.d3_js()[:200]


# --- masking views -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    from tiny_assets import tiny_corpus

    from roberta.tokenizer import RobertaTokenizer

    return RobertaTokenizer.train(tiny_corpus(), vocab_size=400, min_frequency=1)


def test_coverage_grows_with_dynamic_and_stalls_with_one_static_mask(tokenizer):
    ids = torch.tensor(tokenizer.encode("The cat seemed unbelievably bad after the match.").ids)
    config = MaskingConfig(mlm_probability=0.15)
    dynamic, static = masking_viz.average_coverage(tokenizer, ids, epochs=10, config=config,
                                                   seed=0, copies=1, runs=300)
    assert all(b >= a for a, b in zip(dynamic, dynamic[1:], strict=False))
    assert max(static) - min(static) < 1e-9  # the same mask every epoch
    assert dynamic[-1] > 0.6 > static[-1]
    assert dynamic[-1] == pytest.approx(1 - 0.85**10, abs=0.08)


def test_static_copies_repeat(tokenizer):
    ids = torch.tensor(tokenizer.encode("The cat seemed bad after the match yesterday.").ids)
    run = masking_viz.static_run(tokenizer, ids, 6, MaskingConfig(0.3), 0, 2, "static")
    assert torch.equal(run.record[0], run.record[2]) and torch.equal(run.record[1], run.record[5])
    assert run.row_labels[3] == "epoch 4 (copy 2)"


def test_measured_split_is_near_80_10_10(tokenizer):
    ids = torch.tensor(tokenizer.encode("The film looked surprisingly fresh on Monday.").ids)
    split = masking_viz.measure_split(tokenizer, ids, MaskingConfig(), seed=0, draws=4000)
    assert split.chosen_fraction == pytest.approx(0.15, abs=0.01)
    assert split.masked_fraction == pytest.approx(0.8, abs=0.02)
    assert split.random_fraction == pytest.approx(0.1, abs=0.02)
    assert split.kept_fraction == pytest.approx(0.1, abs=0.02)


def test_grid_colours_every_position(tokenizer):
    ids = torch.tensor(tokenizer.encode("The cat <b>was</b> good.").ids)
    run = masking_viz.dynamic_run(tokenizer, ids, 3, MaskingConfig(0.5, whole_word=True), 0,
                                  "whole word")
    special = [i in tokenizer.special_ids for i in ids.tolist()]
    html = masking_viz.run_html(run, special)
    assert html.count('class="mask-cell') == 3 * len(ids)
    assert "<b" not in html and "&lt;" in html  # user text is escaped
    assert "mask-word-start" in html


# --- model tab -----------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["nano", "micro"])
def test_parameter_count_formula_matches_the_model(preset):
    from roberta.ui.model_tab import masked_lm_parameters, parameters_by_component

    config = RobertaConfig.preset(preset)
    model = RobertaForMaskedLM(config)
    actual = sum(p.numel() for p in model.parameters())
    assert masked_lm_parameters(config) == actual
    table = parameters_by_component(model)
    assert table["parameters"].iloc[-1] == actual
    assert "other" not in set(table["component"])


def test_roberta_base_shape_has_its_known_size():
    from roberta.ui.model_tab import masked_lm_parameters

    # transformers' RobertaForMaskedLM("roberta-base") has 124,697,433 parameters
    assert masked_lm_parameters(RobertaConfig.preset("base")) == 124_697_433


def test_classifier_components():
    from roberta.ui.model_tab import parameters_by_component

    model = RobertaForSequenceClassification(RobertaConfig.preset("nano"))
    components = set(parameters_by_component(model)["component"])
    assert "classification head: dense, out_proj" in components and "other" not in components
