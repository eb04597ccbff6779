"""What `--resume` checks: a resumed run continues with its checkpoint's own settings, refuses
any flag that would make it another run (by name), and logs each step once.

trainer_state.json keeps the engine's settings; the run record (<out>.run.json) keeps what
defines a run besides them. The CLI (roberta/cli.py) calls these.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import RobertaConfig
from .masking import MaskingConfig
from .settings import naming
from .training.config import FinetuneConfig, PretrainConfig

# A setting's flag, as the CLI declares it (roberta/settings.py).
FLAG_OF = naming(PretrainConfig, FinetuneConfig, MaskingConfig, RobertaConfig, by="flag")

# Settings a resumed run may change: how long it goes on, how often it reports, snapshots and
# saves, and where it runs. Any other (seed, learning rate, batch, masking...) would make it
# another run.
RESUME_MAY_CHANGE = frozenset({"max_steps", "eval_every", "snapshots", "checkpoint_every",
                               "device", "output_dir"})


def _flag(name: str) -> str:
    """The flag that sets a setting: declared with it, or its name as a flag."""
    flag = FLAG_OF(name)
    return flag if flag != name else "--" + name.replace("_", "-")


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


# --- the run record: what defines a run besides trainer_state.json -------------------------
# The text it learns from, its tokenizer, its model's shape and start (pretrain); its task, CSV
# and dropout (finetune). Kept beside the checkpoint as <out>.run.json (like the metrics log:
# a checkpoint save replaces the folder), so --resume can refuse a flag that changes them.
# Files are compared by content: the same text under another path is the same run; an edited
# file is not.
CONTENT_OF = {"corpus": "corpus_text", "csv": "csv_text"}


def run_record_path(out: Path) -> Path:
    return out.parent / f"{out.name}.run.json"


def read_run_record(out: Path) -> dict:
    """The run record of the checkpoint in `out`; {} if there is none (an older checkpoint)."""
    try:
        record = json.loads(run_record_path(out).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_run_record(out: Path, record: dict) -> None:
    path = run_record_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_as_json(record), indent=1, sort_keys=True) + "\n")


def text_fingerprint(texts) -> str:
    """A short hash of a corpus's documents (or a file's bytes): equal only for the same text."""
    digest = hashlib.sha256()
    for text in [texts] if isinstance(texts, bytes) else texts:
        digest.update(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def path_flag(value: str | None) -> str | None:
    """A directory or file flag as the record keeps it: absolute, so `./x` and `x` agree."""
    return None if value is None else str(Path(value).resolve())


def _run_flag_changes(record: dict, given_run: dict) -> list[str]:
    """Each run flag given that differs from the record, said as the flag and both values."""
    changed = []
    for key, value in given_run.items():
        if key in CONTENT_OF.values() or value is None or key not in record:
            continue
        if key in CONTENT_OF:
            content = CONTENT_OF[key]
            if content in record and given_run.get(content) != record[content]:
                changed.append(f"{_flag(key)} {value} (not the text the checkpoint was trained "
                               f"on, {record[key]})")
        elif _as_json(value) != record[key]:
            was = "not given" if record[key] is None else record[key]
            changed.append(f"{_flag(key)} {value} (the checkpoint's: {was})")
    return changed


def resumed_settings(out: Path, given: dict, given_masking: dict | None = None,
                     given_run: dict | None = None) -> dict:
    """The settings a --resume continues with: the checkpoint's own (trainer_state.json), with
    the flags given. A flag given that would change the run (anything but RESUME_MAY_CHANGE,
    and the run record's flags in `given_run`: corpus, tokenizer, shape, task, CSV...) must
    match the checkpoint's, or ValueError names each that differs: a forgotten --seed takes
    the checkpoint's, a different one is refused."""
    try:
        saved = json.loads((out / "trainer_state.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = None
    if not isinstance(saved, dict):
        return given  # the engine refuses the checkpoint, saying what is wrong with it
    changed = [f"{_flag(k)} {v} (the checkpoint's: {saved[k]})"
               for k, v in given.items() if k in saved and k not in RESUME_MAY_CHANGE
               and _as_json(v) != saved[k]]
    changed += _run_flag_changes(read_run_record(out), given_run or {})
    saved_masking = saved.get("masking") if isinstance(saved.get("masking"), dict) else {}
    changed += [f"{_flag(k)} {v} (the checkpoint's: {saved_masking[k]})"
                for k, v in (given_masking or {}).items()
                if k in saved_masking and _as_json(v) != saved_masking[k]]
    if changed:
        raise ValueError(f"--resume continues the run in {out} with its own settings; these "
                         f"differ: {'; '.join(changed)}. Leave them out (the checkpoint's are "
                         f"used), or start a new run with another --out")
    return {**saved, **given}


def trim_metrics_log(log_path: Path, step: int) -> None:
    """Before a resume from the checkpoint at `step`: drop the log's rows past it (the steps a
    killed run logged after its last checkpoint are run again), so each step is logged once."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    log_path.write_text("".join(f"{line}\n" for line in kept))
