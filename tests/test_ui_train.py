"""The Train and Sentiment tabs: /train, /stop_training, /download_model, /finetune,
/stop_finetuning and /classify through gradio_client against the app launched in-process
(conftest.py), plus the pieces behind them (settings, limits, the training queue, curves).

Most runs train on a small pasted corpus with the embedded (tiny) tokenizer so they take
seconds; one run uses only its first argument and so the bundled corpus, as a visitor would.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zipfile

import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from streaming import stream
from tiny_assets import tiny_corpus

from roberta.config import RobertaConfig
from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.training.pretrain_settings import PretrainSettings, model_config, pretrain_config
from roberta.ui import limits
from roberta.ui.limits import LimitError, TrainingQueue
from roberta.ui.pretrain_job import build_model, export_hf_zip, validate
from roberta.ui.runs import OnceCache, SettingsError
from roberta.viz.curves import FinetuneHistory, PretrainHistory

PASTED = "\n\n".join(tiny_corpus(300))  # 300 one-sentence documents


def fast_kwargs(**overrides):
    """A run on the pasted corpus with the embedded tiny tokenizer: data ready in a blink."""
    return dict(corpus="pasted", pasted_text=PASTED, tokenizer="embedded", seq_length=32,
                batch_size=8, eval_every=5, **overrides)


def app_error(call) -> str:
    with pytest.raises(AppError) as caught:
        call()
    message = str(caught.value)
    assert "Traceback" not in message and 'File "' not in message, message
    return message


def plot_points(plot_output, trace: int = 0) -> int | None:
    """How many points trace `trace` of a streamed gr.Plot value has (None: not redrawn)."""
    if "plot" not in plot_output:  # gr.skip(): this update left the chart as it was
        return None
    spec = json.loads(plot_output["plot"])
    return len(spec["data"][trace]["x"]) if len(spec["data"]) > trace else 0




# --- the pieces, without the app --------------------------------------------------------------

@pytest.mark.parametrize("config", [
    RobertaConfig.preset("micro"), RobertaConfig.preset("nano", vocab_size=300),
    RobertaConfig(vocab_size=500, hidden_size=48, num_hidden_layers=3, num_attention_heads=3,
                  intermediate_size=100, max_position_embeddings=70),
    model_config(PretrainSettings(size="custom", hidden_size=96, num_heads=4, seq_length=40),
                 777)])
def test_parameter_count_matches_the_model(config):
    """The library's closed form, which sizes are refused by before anything is built."""
    model = RobertaForMaskedLM(config)
    assert RobertaForMaskedLM.parameter_count(config) == sum(p.numel() for p in
                                                             model.parameters())


def test_defaults_are_the_one_minute_run():
    settings, warnings = validate(PretrainSettings())
    assert warnings == []
    assert (settings.size, settings.num_layers, settings.hidden_size) == ("micro", 2, 128)
    assert settings.precision == "auto" and settings.device == "cpu"
    config = model_config(settings, 4096)
    assert config.max_position_embeddings >= settings.seq_length + 2
    # The structured start, its positions held for the whole run, at micro's own rate.
    assert (settings.init, settings.hold_positions_steps, settings.learning_rate) == (
        "structured", -1, 2e-3)
    assert pretrain_config(settings).hold_positions_steps == -1


def test_learning_rate_follows_the_width_unless_given():
    tiny, _ = validate(PretrainSettings(size="tiny"))
    assert tiny.learning_rate == 1e-3  # 2e-3 keeps the 4-layer tiny preset on the plateau
    given, _ = validate(PretrainSettings(size="tiny", learning_rate=5e-4))
    assert given.learning_rate == 5e-4
    custom, _ = validate(PretrainSettings(size="custom", hidden_size=512, num_heads=8))
    assert custom.learning_rate == pytest.approx(5e-4)


def test_warmup_is_150_steps_or_a_tenth_of_a_shorter_run():
    assert validate(PretrainSettings())[0].warmup_steps == 150
    short, warnings = validate(PretrainSettings(max_steps=60))
    assert short.warmup_steps == 6 and warnings == []
    assert validate(PretrainSettings(warmup_steps=0))[0].warmup_steps == 0
    # The page (and gradio_client) send the box's 150 with a short run: a tenth, and a note.
    clamped, warnings = validate(PretrainSettings(max_steps=60, warmup_steps=150))
    assert clamped.warmup_steps == 6 and "a tenth of the run" in warnings[0]


def test_random_start_trains_its_positions_and_the_model_is_plain_roberta():
    settings, _ = validate(PretrainSettings(init="roberta"))
    assert pretrain_config(settings).hold_positions_steps == 0  # they must learn
    tokenizer = RobertaTokenizer.train(tiny_corpus(50), vocab_size=300, min_frequency=1)
    model = build_model(settings, tokenizer)
    assert "structured_init" not in model.config.extra


@pytest.mark.parametrize("overrides, expected", [
    (dict(learning_rate=0), "learning rate must be above 0"),
    (dict(learning_rate=-1e-3), "learning rate must be above 0"),
    (dict(size="custom", hidden_size=100, num_heads=3), "divisible by the number of attention"),
    (dict(max_steps=10**7), "more than this app allows"),
    (dict(size="large"), "parameters, more than"),
    (dict(batch_size=4096, seq_length=512), "more than this app allows"),
    (dict(mask_fraction=0.8, random_fraction=0.5), "add up to at most 1"),
    (dict(precision="fp16"), "needs a CUDA GPU"),
    (dict(max_steps=2.5), "whole number"),
    (dict(probes="no mask here"), "has no <mask>"),
    (dict(init="xavier"), "Unknown initialisation"),
    (dict(hold_positions_steps=-5), "Hold positions"),
    (dict(size="custom", hidden_size=8, num_heads=8), "cannot take the structured start"),
])
def test_impossible_settings_are_plain_sentences(overrides, expected):
    with pytest.raises((SettingsError, LimitError)) as caught:
        validate(PretrainSettings(**overrides))
    assert expected in str(caught.value)


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(limits.ENV_MAX_STEPS, "123")
    monkeypatch.setenv(limits.ENV_MAX_PARAMETERS, "2.5M")
    monkeypatch.setenv(limits.ENV_MAX_UPLOAD_MB, "0.5")
    now = limits.current_limits()
    assert (now.max_steps, now.max_parameters, now.max_upload_bytes) == (123, 2_500_000, 500_000)
    with pytest.raises(LimitError, match="123"):
        limits.check_steps(124)
    monkeypatch.setenv(limits.ENV_MAX_STEPS, "lots")
    with pytest.raises(LimitError, match="not a number"):
        limits.current_limits()


def test_training_queue_takes_turns_in_order():
    capacity = [1]
    queue = TrainingQueue(lambda: capacity[0], lambda: 2)
    first, second, third = queue.join(), queue.join(), queue.join()
    assert (first.position, second.position, third.position) == (0, 1, 2)
    assert first.wait(0) and not second.wait(0)
    with pytest.raises(LimitError, match="waiting"):
        queue.join()  # two are waiting already: the most this queue holds
    released = threading.Timer(0.05, first.leave)
    released.start()
    assert second.wait(2.0) and third.position == 1
    third.leave()  # leaving the line frees the place
    assert third.position == -1 and queue.waiting == 0
    capacity[0] = 2
    fourth = queue.join()
    assert fourth.wait(0)  # a second slot opened
    second.leave()
    fourth.leave()
    assert queue.running == 0


def test_the_queue_says_when_the_run_ahead_is_your_own():
    queue = TrainingQueue(lambda: 1, lambda: 8)
    mine = queue.join("alice", "training run in the Train tab")
    waiting = queue.join("alice", "comparison in the Experiments tab")
    stranger = queue.join("bob", "training run in the Train tab")
    assert waiting.own_ahead == "training run in the Train tab"
    assert stranger.own_ahead is None
    assert "your own training run in the Train tab is using it" in limits.queue_message(
        waiting.position, waiting.own_ahead)
    assert "another visitor's run" in limits.queue_message(1, None)
    assert "One of them is your own" not in limits.queue_message(stranger.position,
                                                                 stranger.own_ahead)
    later = queue.join("bob", "fine-tuning run in the Sentiment tab")
    assert later.own_ahead == "training run in the Train tab"  # bob's, waiting ahead
    assert "One of them is your own training run" in limits.queue_message(later.position,
                                                                           later.own_ahead)
    assert queue.join().own_ahead is None  # no owner named: nothing is claimed
    for ticket in (mine, waiting, stranger, later):
        ticket.leave()


def test_once_cache_computes_a_key_once_for_concurrent_callers():
    cache, calls = OnceCache(maxsize=2), []

    def slow():
        calls.append(1)
        time.sleep(0.1)
        return "value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 4 and len(calls) == 1
    with pytest.raises(ZeroDivisionError):
        cache.get("bad", lambda: 1 / 0)
    assert cache.get("bad", lambda: "retried") == "retried"  # failures are not cached


def test_curves_draw_baselines_and_thin_long_series():
    history = PretrainHistory(unigram_accuracy=0.03, unigram_perplexity=900.0)
    for step in range(1, 4001):
        history.record("step", step, {"loss": 9 - step / 1000, "lr": 1e-3,
                                      "tokens_per_s": 2e4})
    history.record("eval", 4000, {"val_loss": 5.0, "val_accuracy": 0.2, "val_perplexity": 150})
    loss, accuracy, perplexity, lr, speed = history.specs()
    assert len(loss["data"][0]["x"]) <= 400 and loss["data"][0]["x"][-1] == 4000
    assert accuracy["layout"]["shapes"][0]["line"]["dash"] == "dash"
    assert accuracy["layout"]["shapes"][0]["y0"] == pytest.approx(3.0)
    assert accuracy["data"][0]["y"] == [20.0]
    assert perplexity["layout"]["yaxis"]["type"] == "log"
    json.dumps(history.specs())  # plain JSON for gr.Plot
    assert history.figures()[0].data  # and valid plotly
    finetune = FinetuneHistory(baseline_accuracy=0.8, majority_accuracy=0.65)
    finetune.record("eval", 10, {"val_accuracy": 0.7, "val_macro_f1": 0.6})
    labels = [t["name"] for t in finetune.accuracy_spec()["data"]]  # baselines: in the legend
    assert any("TF-IDF" in t and "80.0%" in t for t in labels)


def test_exports_never_overwrite_each_other(tiny_assets):
    from roberta.tokenizer import RobertaTokenizer

    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    first = export_hf_zip(model, tokenizer, "My model 1 (nano, 5 steps)")
    second = export_hf_zip(model, tokenizer, "My model 1 (nano, 5 steps)")
    assert first != second and first.exists() and second.exists()
    names = zipfile.ZipFile(first).namelist()
    folder = names[0].split("/")[0]
    for required in ("config.json", "model.safetensors", "tokenizer.json", "vocab.json",
                     "merges.txt", "tokenizer_config.json"):
        assert f"{folder}/{required}" in names


def test_an_exported_classifier_says_how_to_classify_with_it(tiny_assets):
    from roberta.tokenizer import RobertaTokenizer
    from roberta.training.finetuning import classifier_from

    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    mlm = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    for model, says, never in (
            (classifier_from(mlm, ["sad", "glad"]), ("AutoModelForSequenceClassification",
             "text-classification", "labels: sad, glad"), "fill-mask"),
            (mlm, ("AutoModelForMaskedLM", "fill-mask", "masked language model"),
             "text-classification")):
        archive = zipfile.ZipFile(export_hf_zip(model, tokenizer, "Mine"))
        readme = archive.read(next(n for n in archive.namelist() if n.endswith("README.md")))
        for words in says:
            assert words in readme.decode()
        assert never not in readme.decode()


# --- /train through gradio_client ------------------------------------------------------------

def test_training_endpoints_are_named(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/train", "/stop_training", "/download_model", "/finetune",
                 "/stop_finetuning", "/classify"):
        assert name in endpoints
    first = endpoints["/train"]["parameters"][0]
    assert first["parameter_name"] == "max_steps"
    assert all(p["parameter_has_default"] for p in endpoints["/train"]["parameters"])
    assert all(p["parameter_has_default"] for p in endpoints["/finetune"]["parameters"])
    assert all(p["parameter_has_default"] for p in endpoints["/classify"]["parameters"][1:])


@pytest.mark.parametrize("api_name, build", [("/train", "build_train_tab"),
                                             ("/finetune", "build_sentiment_tab")])
def test_the_api_takes_the_forms_settings_in_its_order(client, api_name, build):
    """Each tab's form (setting -> control) is the one list its endpoint is wired from: the
    served API's arguments are the form's settings, in order, each read from the control of
    that setting (the same label), each optional."""
    import gradio as gr

    from roberta.ui import sentiment_tab, train_tab

    builder = getattr(train_tab if build == "build_train_tab" else sentiment_tab, build)
    with gr.Blocks(), gr.Tab("t"):
        form = builder(gr.State({}))
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    parameters = endpoints[api_name]["parameters"]
    assert [p["parameter_name"] for p in parameters] == list(form)
    assert [p["label"] for p in parameters] == [c.label for c in form.values()]
    assert all(p["parameter_has_default"] for p in parameters)


@pytest.fixture(scope="module")
def trained(app_url, connect):
    """One default run, as a visitor's first click: only the step count given."""
    client = connect(app_url)
    started = time.monotonic()
    outputs = stream(client.submit(60, api_name="/train"), timeout=300)
    return client, outputs, time.monotonic() - started


@pytest.mark.slow
def test_train_with_only_the_step_count_streams_and_keeps_the_model(trained):
    client, outputs, _ = trained
    status, progress, loss, accuracy, perplexity, lr, speed, probes, replay, name = outputs[-1]
    assert status.startswith("Finished after 60 steps"), status
    # The time-lapse: every snapshot to the last step, with its figures and guesses, to replay.
    (run,) = json.loads(replay)["runs"]
    assert run["steps"][0] == 0 and run["steps"][-1] == 60
    assert len(run["probes"]) == len(run["lines"]) == len(run["roles"]) == len(run["steps"])
    assert len(run["attention"]["frames"]) == len(run["map"]["frames"]) == len(run["steps"])
    assert "step 60 / 60" in progress
    counts = [n for n in (plot_points(o[2]) for o in outputs) if n is not None]
    assert counts == sorted(counts) and counts[-1] >= 60 > counts[0]  # the loss chart grew
    assert len({c for c in counts if c}) >= 2  # ...over several updates, not just at the end
    assert plot_points(accuracy) >= 2  # evaluated at steps 50 and 60
    spec = json.loads(accuracy["plot"])
    assert any("unigram baseline" in trace["name"] for trace in spec["data"])  # legend
    for plot in (perplexity, lr, speed):
        assert plot_points(plot) >= 1
    assert len(probes["data"]) == 4 and all(row[1] for row in probes["data"])
    assert name.startswith("My model 1 (micro, 60 steps)")
    # Selectable in the other tabs, for this session only.
    table, *_ = client.predict("The film was a <mask>.", name, api_name="/fill_mask")
    assert len(table["data"]) == 5


@pytest.mark.slow
def test_a_trained_model_belongs_to_its_session_only(trained, client):
    _, outputs, _ = trained
    name = outputs[-1][-1]
    message = app_error(lambda: client.predict("A <mask>.", name, api_name="/fill_mask"))
    assert "no masked language model called" in message


@pytest.mark.slow
def test_download_is_a_checkpoint_transformers_loads(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    client, _, _ = trained
    first = client.predict(api_name="/download_model")
    second = client.predict(api_name="/download_model")
    assert first == second  # one export per trained model, not one per click
    with zipfile.ZipFile(first) as archive:
        archive.extractall(tmp_path)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    reference = RobertaForMaskedLM.from_pretrained(folder)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The film was a <mask>.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = reference(ids).logits
        actual = theirs(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_download_before_training_is_a_plain_error(client):
    assert "no trained model" in app_error(lambda: client.predict(api_name="/download_model"))


@pytest.fixture
def own_runs():
    """For tests that count training slots: the app's one training queue (shared by every
    session of the server process, the Sentiment tab's runs included) is first waited empty of
    runs earlier tests left, so only this test's runs hold slots; `own_runs(client, *args,
    **kwargs)` starts a /train job, and every job started so is stopped and waited out after
    the test, pass or fail, so the next test finds the queue empty too."""
    from roberta.ui.limits import TRAINING_QUEUE

    deadline = time.monotonic() + 180
    while TRAINING_QUEUE.running or TRAINING_QUEUE.waiting:
        if time.monotonic() > deadline:
            pytest.fail(f"runs left by earlier tests still hold the training queue: "
                        f"{TRAINING_QUEUE.running} running, {TRAINING_QUEUE.waiting} waiting")
        time.sleep(0.2)
    started = []

    def start(client, *args, **kwargs):
        job = client.submit(*args, api_name="/train", **kwargs)
        started.append((client, job))
        return job

    yield start
    for client, job in started:
        if not job.done():
            client.predict(api_name="/stop_training")
    for _, job in started:
        with contextlib.suppress(Exception):  # its own outcome was the test's business
            job.result(timeout=120)


@pytest.mark.slow  # a training run in the app
def test_stop_ends_the_run_with_a_usable_model_and_only_its_own(app_url, connect, own_runs):
    owner, stranger = connect(app_url), connect(app_url)
    job = own_runs(owner, 5000, **fast_kwargs())
    stream(job, until=lambda o: (plot_points(o[2]) or 0) >= 3, timeout=120)
    # Another browser's Stop does not touch this run.
    assert "No training run" in stranger.predict(api_name="/stop_training")
    time.sleep(0.5)
    assert not job.done()
    assert "Stopping" in owner.predict(api_name="/stop_training")
    outputs = stream(job, timeout=60)
    status, *_, name = outputs[-1]
    assert status.startswith("Stopped after"), status
    steps = int(status.split("after ")[1].split(" steps")[0].replace(",", ""))
    assert 3 <= steps < 5000
    assert name.startswith("My model 1 (micro,")
    table, *_ = owner.predict("The cat was <mask>.", name, api_name="/fill_mask")
    assert len(table["data"]) == 5


@pytest.mark.slow  # a training run in the app
def test_runs_take_turns_and_the_queue_says_where_you_are(app_url, connect, own_runs,
                                                           monkeypatch):
    monkeypatch.setenv(limits.ENV_MAX_RUNS, "1")
    monkeypatch.setenv(limits.ENV_MAX_QUEUE, "1")
    first, second, third = (connect(app_url) for _ in range(3))
    running = own_runs(first, 5000, **fast_kwargs())
    stream(running, until=lambda o: (plot_points(o[2]) or 0) >= 1, timeout=120)
    waiting = own_runs(second, 10, **fast_kwargs())
    queued = stream(waiting, until=lambda o: "queue" in o[0] or "next in line" in o[0],
                    timeout=30)
    assert "next in line" in queued[-1][0]
    message = app_error(lambda: third.predict(10, **fast_kwargs(), api_name="/train"))
    assert "Try again in a few minutes" in message
    first.predict(api_name="/stop_training")
    outputs = stream(waiting, timeout=120)  # its turn came once the first run stopped
    assert outputs[-1][0].startswith("Finished after 10 steps"), outputs[-1][0]
    stream(running, timeout=60)


@pytest.mark.slow  # a training run in the app
def test_a_visitor_waiting_behind_their_own_run_is_told_it_is_theirs(app_url, connect, own_runs,
                                                                     monkeypatch):
    """Compare pressed while this browser's own Train run holds the one slot (issue 33)."""
    monkeypatch.setenv(limits.ENV_MAX_RUNS, "1")
    learner, stranger = connect(app_url), connect(app_url)
    running = own_runs(learner, 5000, **fast_kwargs())
    stream(running, until=lambda o: (plot_points(o[2]) or 0) >= 1, timeout=120)
    comparison = learner.submit("init", 10, api_name="/compare")
    try:
        waiting = stream(comparison, until=lambda o: "Waiting" in str(o), timeout=60)
        assert "your own training run in the Train tab is using it" in str(waiting[-1])
        assert "another visitor" not in str(waiting[-1])
        theirs = own_runs(stranger, 10, **fast_kwargs())
        queued = stream(theirs, until=lambda o: "queue" in o[0], timeout=60)
        assert "One of them is your own" not in queued[-1][0]
    finally:
        learner.predict(api_name="/stop_comparison")
        with contextlib.suppress(Exception):
            comparison.result(timeout=120)


@pytest.mark.slow  # a training run in the app
def test_two_browsers_train_at_once_without_touching_each_other(app_url, connect, own_runs,
                                                                 monkeypatch):
    monkeypatch.setenv(limits.ENV_MAX_RUNS, "2")
    alice, bob = connect(app_url), connect(app_url)
    alice_job = own_runs(alice, 5000, **fast_kwargs())
    bob_job = own_runs(bob, 5000, **fast_kwargs(seed=1))
    for job in (alice_job, bob_job):
        stream(job, until=lambda o: (plot_points(o[2]) or 0) >= 2, timeout=120)
    alice.predict(api_name="/stop_training")
    assert stream(alice_job, timeout=60)[-1][0].startswith("Stopped after")
    assert not bob_job.done()  # Alice's Stop ended Alice's run only
    bob.predict(api_name="/stop_training")
    bob_final = stream(bob_job, timeout=60)[-1]
    assert bob_final[0].startswith("Stopped after")
    assert bob_final[-1].startswith("My model 1 (")  # numbered within Bob's own session


@pytest.mark.parametrize("kwargs, expected", [
    (dict(max_steps=10**6), "more than this app allows"),
    (dict(max_steps=2.5), "Steps must be a whole number, not 2.5"),  # never trained as 2
    (dict(batch_size=8.5), "must be a whole number"),
    (dict(learning_rate=0), "learning rate must be above 0"),
    (dict(size="custom", hidden_size=100, num_heads=3), "divisible"),
    (dict(corpus="upload"), "No file was uploaded"),
    (dict(corpus="pasted", pasted_text="   "), "empty"),
    (dict(corpus="pasted", pasted_text="Just one paragraph."), "single document"),
    (dict(precision="fp16"), "needs a CUDA GPU"),
    (dict(size="large"), "parameters, more than"),
    (dict(hold_positions_steps=-4), "Hold positions"),
    (dict(size="custom", hidden_size=64, num_heads=64), "cannot take the structured start"),
])
def test_bad_training_settings_are_plain_errors(client, kwargs, expected):
    args = {**fast_kwargs(), "max_steps": 5, **kwargs}
    assert expected in app_error(lambda: client.predict(**args, api_name="/train"))


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    (b"caf\xe9 au lait\n\nsecond paragraph\n", "not valid UTF-8"),
])
def test_bad_uploads_are_plain_errors(client, tmp_path, content, expected):
    upload = tmp_path / "corpus.txt"
    upload.write_bytes(content)
    message = app_error(lambda: client.predict(
        5, corpus="upload", corpus_files=[handle_file(str(upload))], api_name="/train"))
    assert expected in message


def test_an_upload_over_the_cap_is_refused(client, tmp_path, monkeypatch):
    monkeypatch.setenv(limits.ENV_MAX_UPLOAD_MB, "0.001")
    upload = tmp_path / "big.txt"
    upload.write_text("word " * 1000)
    message = app_error(lambda: client.predict(
        5, corpus="upload", corpus_files=[handle_file(str(upload))], api_name="/train"))
    assert "more than the 0.001 MB" in message


@pytest.mark.slow  # a training run in the app
def test_training_on_uploaded_files_with_a_new_tokenizer(client, tmp_path):
    files = []
    for i, chunk in enumerate((tiny_corpus(150, seed=1), tiny_corpus(150, seed=2))):
        path = tmp_path / f"part{i}.txt"
        path.write_text("\n\n".join(chunk))
        files.append(handle_file(str(path)))
    outputs = client.predict(6, corpus="upload", corpus_files=files, tokenizer="new",
                             vocab_size=512, seq_length=32, batch_size=8, eval_every=3,
                             api_name="/train")
    assert outputs[0].startswith("Finished after 6 steps"), outputs[0]


# --- /finetune and /classify -----------------------------------------------------------------

@pytest.mark.slow  # a training run in the app
def test_finetune_streams_then_classify_with_the_new_classifier(client):
    outputs = stream(client.submit(6, eval_every=3, api_name="/finetune"), timeout=300)
    status, progress, accuracy, loss, results, name = outputs[-1]
    assert status.startswith("Finished after 6 steps"), status
    assert plot_points(accuracy) == 2 and plot_points(loss) == 6
    assert "TF-IDF + logistic regression" in results and "test set" in results
    assert name.startswith("My classifier 1 (from Embedded masked LM")
    label, spans, explanation = client.predict("Lovely tea, will buy again.", name,
                                               api_name="/classify")
    names = {c["label"] for c in label["confidences"]}
    assert names == {"great (5 stars)", "other (below 5 stars)"}  # honest label names
    assert spans and all(-1 <= s["class_or_confidence"] <= 1 for s in spans)


def small_live_domains():
    """The multi-domain task at toy size: two training domains and a test-only one."""
    from roberta import sentiment_protocol as protocol

    def domain(name, test_only=False):
        texts = [f"The {name} {i} was {'good and lovely' if i % 2 else 'bad and awful'}."
                 for i in range(80)]
        labels = tuple(i % 2 for i in range(80))
        train = () if test_only else tuple(texts[:60])
        return protocol.DomainSplit(name, f"{name.title()} reviews", test_only, train,
                                    () if test_only else labels[:60], tuple(texts[60:]),
                                    labels[60:])
    return protocol.live_domains([domain("parks", True), domain("cafes"), domain("shops")],
                                 train_per_domain=40, test_per_domain=10)


@pytest.mark.slow  # a training run in an app of its own
def test_finetune_on_several_domains_scores_each_beside_tfidf(tiny_assets, launch_app,
                                                               connect, monkeypatch):
    from roberta.ui import finetune_job as job
    from roberta.ui.app import build_app

    live = small_live_domains()
    monkeypatch.setattr(job, "domains_present", lambda: True)
    monkeypatch.setattr(job, "live_domains", lambda: live)
    demo = build_app()  # the choice is offered where the archives are in the cache
    try:
        client = connect(launch_app(demo))
        outputs = client.predict(4, "domains", batch_size=8, eval_every=2,
                                 api_name="/finetune")
    finally:
        demo.close()
    status, results = outputs[0], outputs[4]
    assert status.startswith("Finished after 4 steps") and "Scoring" not in status, status
    table = results.split("**Per domain**")[1]
    for title in ("Parks reviews *(never trained on)* | 10 |", "Cafes reviews | 10 |",
                  "Shops reviews | 10 |", "All training domains' test splits | 20 |"):
        assert f"| {title}" in table, title
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 5 and all(row.endswith("| 50.0% |") for row in rows[1:])  # balanced


@pytest.mark.slow  # a training run in the app
def test_finetune_on_an_uploaded_csv(client, tmp_path):
    rows = ["review,sentiment"] + [f'"{t}",{"good" if "good" in t or "wonderful" in t else "bad"}'
                               for t in tiny_corpus(120, seed=3)]
    upload = tmp_path / "reviews.csv"
    upload.write_text("\n".join(rows))
    outputs = client.predict(4, "csv", handle_file(str(upload)), batch_size=8, eval_every=2,
                             api_name="/finetune")
    assert outputs[0].startswith("Finished after 4 steps"), outputs[0]
    label, *_ = client.predict("The food was good.", outputs[5], api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"bad", "good"}


@pytest.mark.slow  # a training run in the app
def test_stop_finetuning_keeps_the_best_classifier(client, monkeypatch):
    """Stopped mid-run, the classifier kept (the one Classify offers) is the best validation
    step's, weight for weight, and the results name that step. A spy on Finetuner.score makes
    each validation accuracy lower than the one before (the app runs in this process), so the
    best step is the first evaluation, never the step the run stopped at."""
    from roberta.training.finetuning import Finetuner
    from roberta.ui import registry

    real_score, real_add = Finetuner.score, registry.add
    weights_at, kept = {}, []

    def falling_validation_accuracy(self, windows, labels):
        scores = real_score(self, windows, labels)
        if windows is self._val[0]:
            scores["accuracy"] = 1 / (1 + self.step)
            weights_at[self.step] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return scores

    def add_and_remember(session, loaded):
        kept.append(loaded)
        return real_add(session, loaded)

    monkeypatch.setattr(Finetuner, "score", falling_validation_accuracy)
    monkeypatch.setattr(registry, "add", add_and_remember)
    job = client.submit(5000, eval_every=2, batch_size=8, api_name="/finetune")
    stream(job, until=lambda o: (plot_points(o[2]) or 0) >= 2, timeout=120)
    assert "Stopping" in client.predict(api_name="/stop_finetuning")
    status, *_, results, name = stream(job, timeout=120)[-1]
    assert status.startswith("Stopped after"), status
    assert "best validation checkpoint (step 2, validation accuracy 33.3%)" in results, results
    assert max(weights_at) >= 4  # evaluated again after the best step
    (classifier,) = [loaded.model for loaded in kept if loaded.name == name]
    for key, value in classifier.state_dict().items():
        assert torch.equal(value, weights_at[2][key]), key


def test_classify_with_only_the_text(client):
    label, spans, explanation = client.predict("Great coffee, I love it.", api_name="/classify")
    assert len(label["confidences"]) == 2
    assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 1e-4
    assert "".join(s["token"] for s in spans) == "Great coffee, I love it."
    assert "integrated gradients" in explanation


@pytest.mark.parametrize("csv_text, expected", [
    ("label\n1\n0\n", "needs a text column and a label column"),
    ("text,label\nfine,1\nok,1\n", "only one class"),
    ("text,notes\ngood,x\nbad,y\n", "holds the labels"),
])
def test_bad_csv_is_a_plain_error(client, tmp_path, csv_text, expected):
    upload = tmp_path / "data.csv"
    upload.write_text(csv_text)
    message = app_error(lambda: client.predict(3, "csv", handle_file(str(upload)),
                                               api_name="/finetune"))
    assert expected in message


@pytest.mark.parametrize("call, expected", [
    (lambda c: c.predict(5, api_name="/finetune", learning_rate=0), "above 0"),
    (lambda c: c.predict(10**7, api_name="/finetune"), "more than this app allows"),
    (lambda c: c.predict(3, "csv", api_name="/finetune"), "No CSV was uploaded"),
    (lambda c: c.predict("   ", api_name="/classify"), "empty"),
    (lambda c: c.predict("Nice.", "Nobody's model", api_name="/classify"), "no sentiment"),
])
def test_bad_sentiment_input_is_a_plain_error(client, call, expected):
    assert expected in app_error(lambda: call(client))


def test_every_initialisation_has_a_label():
    from roberta.init import INIT_CHOICES
    from roberta.training.pretrain_settings import INIT_LABELS

    assert tuple(value for _, value in INIT_LABELS) == INIT_CHOICES


def test_the_rate_box_follows_the_size():
    from roberta.ui.train_tab import rate_for_size

    assert rate_for_size("micro", 999) == 2e-3
    assert rate_for_size("tiny", 999) == 1e-3  # the preset's width, not the custom box
    assert rate_for_size("custom", 512) == pytest.approx(5e-4)


@pytest.mark.slow  # two training runs in the app
@pytest.mark.parametrize("init", ["roberta", "structured"])
def test_either_start_trains_through_the_api(client, init):
    outputs = client.predict(6, **fast_kwargs(), init=init, api_name="/train")
    status = outputs[0]
    assert status.startswith("Finished after 6 steps"), status
    assert "where the input was" in status


# --- the line under Steps: this host's own timing, never a fixed figure ---------------------

def test_the_steps_line_says_what_this_host_timed(monkeypatch):
    from roberta.ui import pretrain_job, train_tab

    monkeypatch.setattr(pretrain_job, "STEP_PACE", pretrain_job.StepPace())
    before = train_tab.steps_info(3000)
    assert "minutes" not in before and "depends on this host" in before, before
    cap = f"this app's cap: {limits.current_limits().max_steps:,}"
    assert cap in before
    pretrain_job.STEP_PACE.record("micro", 8, 128, steps=10, seconds=1.0)  # too few to time
    assert train_tab.steps_info(3000) == before
    pretrain_job.STEP_PACE.record("micro", 8, 128, steps=600, seconds=30.0)  # 50 ms a step
    assert "3,000 steps: about 2 min 30 s on this host" in train_tab.steps_info(3000)
    assert "50 ms a step" in train_tab.steps_info(3000)
    # In proportion to the batch's tokens; another size is not guessed from this one.
    assert "about 5 min 00 s" in train_tab.steps_info(3000, "micro", 16, 128)
    assert "depends on this host" in train_tab.steps_info(3000, "tiny")
    assert "depends on this host" in train_tab.steps_info(3000, "custom", 8, 128, 2, 128, 2, 512)
    for nonsense in (None, "", -5, 0):
        assert train_tab.steps_info(nonsense) == cap


@pytest.mark.slow
def test_a_finished_run_times_this_host_for_the_steps_line(trained):
    from roberta.ui import pretrain_job, train_tab

    _, outputs, _ = trained
    per_step = pretrain_job.STEP_PACE.seconds_per_step("micro", 8, 128)
    assert per_step is not None and 0 < per_step < 5
    assert "on this host" in train_tab.steps_info(3000)
