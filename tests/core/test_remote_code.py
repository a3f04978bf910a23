"""No model code runs unless --trust-remote-code: a model folder whose ``auto_map`` code would
write a marker file is refused by every command that loads a model, tokenizer or config, even
with "y" on stdin (transformers' interactive prompt must never be reached)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke

REFUSAL = "needs its own Python code (auto_map); pass --trust-remote-code"
PKG_DIRS = ("thresher", "curate", "distill", "train")


def make_evil(src: Path, dest: Path) -> tuple[Path, Path]:
    """Copy the tiny model ``src`` to ``dest`` and give it auto_map code writing a marker."""
    shutil.copytree(src, dest)
    marker = dest.parent / f"{dest.name}.MARKER"
    (dest / "evil_code.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('custom code ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n"
        "class EvilTok(PreTrainedTokenizerFast):\n    pass\n")
    cfg = json.loads((dest / "config.json").read_text())
    cfg.update(model_type="evil", auto_map={"AutoConfig": "evil_code.EvilConfig",
                                            "AutoModelForCausalLM": "evil_code.EvilModel"})
    (dest / "config.json").write_text(json.dumps(cfg))
    tc = json.loads((dest / "tokenizer_config.json").read_text())
    tc.update(tokenizer_class="EvilTok", auto_map={"AutoTokenizer": [None, "evil_code.EvilTok"]})
    (dest / "tokenizer_config.json").write_text(json.dumps(tc))
    return dest, marker


@pytest.fixture
def evil(tiny_lm_dir, tmp_path) -> tuple[Path, Path]:
    return make_evil(tiny_lm_dir, tmp_path / f"evil_{tmp_path.name}")


@pytest.fixture
def rows(tmp_path) -> Path:
    p = tmp_path / "rows.jsonl"
    recs = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}?"},
                                          {"role": "assistant", "content": f"answer number {i}."}]}
            for i in range(4)]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def _invoke(args: list[str]):
    return invoke(*args, input="y\ny\ny\n")


@pytest.mark.parametrize("command", [
    ["stats", "{rows}", "--tokenizer", "{evil}"],
    ["curate", "filter", "{rows}", "--min-tokens", "1", "--tokenizer", "{evil}", "--out", "{out}"],
    ["train", "lint-masks", "{rows}", "--base", "{evil}"],
    ["train", "lora", "{rows}", "--base", "{evil}", "--max-steps", "1", "--out", "{out}"],
    ["distill", "generate", "{rows}", "--teacher", "{evil}", "--backend", "transformers", "--out", "{out}"],
    ["curate", "score", "{rows}", "--scorer", "loglik:{evil}", "--out", "{out}"],
], ids=["stats", "filter", "lint-masks", "train-lora", "generate", "score"])
def test_custom_code_never_runs_unasked(command, evil, rows, tmp_path):
    folder, marker = evil
    args = [a.format(rows=rows, evil=folder, out=tmp_path / "out") for a in command]
    res = _invoke(args)
    assert res.exit_code != 0, res.output
    assert not marker.exists(), "the model folder's code ran without --trust-remote-code"
    assert "Traceback" not in res.output
    assert REFUSAL in res.output, res.output


def test_trust_remote_code_runs_it_when_asked(evil, rows):
    """The positive control: the marker does appear with --trust-remote-code."""
    folder, marker = evil
    res = _invoke(["stats", str(rows), "--tokenizer", str(folder), "--trust-remote-code"])
    assert marker.exists(), res.output


def test_loaders_refuse_config_and_model(evil):
    from thresher.errors import ThresherError
    from thresher.models import load_config, load_model, load_tokenizer

    folder, marker = evil
    for load in (load_tokenizer, load_config, load_model):
        with pytest.raises(ThresherError, match=re.escape(REFUSAL)):
            load(folder)
    assert not marker.exists()


def test_every_transformers_load_goes_through_thresher_models():
    """No ``Auto*.from_pretrained(...)`` call outside thresher/models.py (code, not strings)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for d in PKG_DIRS:
        for f in (root / d).rglob("*.py"):
            if f.name == "models.py" and f.parent.name == "thresher":
                continue
            for node in ast.walk(ast.parse(f.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "from_pretrained" and isinstance(node.func.value, ast.Name)
                        and node.func.value.id.startswith("Auto")):
                    offenders.append(f"{f.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders
