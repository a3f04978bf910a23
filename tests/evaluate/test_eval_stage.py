"""thresher eval end to end on tiny models: answers through the generate stage, verifiers,
reference NLL equal to a direct computation, eval.json, the verdict and one-line errors."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from tests.conftest import build_tiny_model
from thresher.cli.main import cli
from thresher.io import write_table
from thresher.schema import make_rows

QA = [("What is the capital of France?", "Paris is the capital of France."),
      ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet."),
      ("What colour is the sky?", "The sky is blue on a clear day."),
      ("How many legs has a spider?", "A spider has eight legs.")]


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    d = tmp_path_factory.mktemp("heldout")
    rows = make_rows([{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                       "category": "trivia" if i % 2 else "science"} for i, (q, a) in enumerate(QA)])
    path = d / "heldout.parquet"
    write_table(rows, path)
    return path


@pytest.fixture(scope="module")
def other_lm(tmp_path_factory, tiny_tokenizer_dir):
    """A second tiny model with different weights (another seed)."""
    import torch

    out = tmp_path_factory.mktemp("other_lm")
    build_tiny_model(out, tiny_tokenizer_dir)
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(out))
    torch.manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m.save_pretrained(str(out))
    return out


def direct_nll(model_dir, prompt: str, answer: str) -> float:
    """Mean token NLL of the rendered answer (and its end-of-turn marker) given the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    lm = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    p = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                   tokenize=False)
    p_ids = tok(p, add_special_tokens=False)["input_ids"]
    r_ids = tok(full[len(p):].rstrip(), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + r_ids])
    with torch.no_grad():
        logits = lm(ids).logits[0, len(p_ids) - 1:-1]
    return float(torch.nn.functional.cross_entropy(logits, ids[0, len(p_ids):]))


@pytest.mark.slow
def test_eval_two_models_writes_eval_json_and_a_verdict(tmp_path, heldout, tiny_lm_dir, other_lm):
    out = tmp_path / "ev"
    res = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-m", f"curated={other_lm}",
                                   "-j", "ends", "-j", "sentences:1-2", "-j", "refnll", "-j", "lang:en",
                                   "--max-tokens", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev["models"]) == {"base", "curated"} and ev["prompts"] == 4 and ev["target"] == "all"
    assert set(ev["models"]["base"]["metrics"]) == {"ends", "sentences", "refnll", "lang", "all"}
    for m in ev["models"]["base"]["metrics"].values():
        assert m["low"] <= m["mean"] <= m["high"]
    pair = next(p for p in ev["pairs"] if p["metric"] == "refnll")
    assert pair["wins"] + pair["ties"] + pair["losses"] == 4 and 0 <= pair["p"] <= 1
    assert set(ev["categories"]) == {"science", "trivia"}
    assert ev["verdict"].startswith("On 'all' over 4 held-out prompts, the curated student ")
    assert "reference NLL changed by" in ev["verdict"] and ev["verdict"] in res.output
    # reference NLL is the direct computation of the mean token NLL of the human answers
    want = [direct_nll(other_lm, q, a) for q, a in QA]
    assert math.isclose(ev["models"]["curated"]["metrics"]["refnll"]["mean"], sum(want) / 4, rel_tol=1e-4)
    import polars as pl

    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height == 8 and {"model", "prompt_id", "eval_refnll", "eval_all"} <= set(kept.columns)
    # every verifier value is what the verifier says on the stored answer
    from thresher.evaluate.verifiers import count_sentences

    for row in kept.iter_rows(named=True):
        n = count_sentences(row["messages"][-1]["content"])
        assert row["eval_sentences"] == float(1 <= n <= 2)
        assert row["eval_ends"] == float(row["finish_reason"] == "stop" and row["messages"][-1]["content"].strip() != "")
    # a rerun reuses the finished stage
    again = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-m", f"curated={other_lm}",
                                     "-j", "ends", "-j", "sentences:1-2", "-j", "refnll", "-j", "lang:en",
                                     "--max-tokens", "8", "--out", str(out)])
    assert again.exit_code == 0 and ev["verdict"] in again.output


def test_bad_judge_spec_is_one_line(tmp_path, heldout, tiny_lm_dir):
    res = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-j", "sentences:three",
                                   "--out", str(tmp_path / "e")])
    assert res.exit_code == 1
    assert res.output == ("Error: judges[0]: judge 'sentences:three': expected a range like 1-2, 3 or 10- "
                          "after ':'\n")
    res = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-j", "vibes",
                                   "--out", str(tmp_path / "e")])
    assert res.exit_code == 1 and res.output.startswith("Error: judges[0]: unknown judge 'vibes' in 'vibes'")
    assert len(res.output.strip().splitlines()) == 1


def test_missing_reference_column_is_one_line(tmp_path, heldout, tiny_lm_dir):
    res = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-j", "exact",
                                   "--reference-column", "answer", "--out", str(tmp_path / "e")])
    assert res.exit_code == 1
    assert res.output == (f"Error: {heldout}: no reference column 'answer' (columns: id, messages, category, "
                          "source)\n")
    prompts_only = tmp_path / "p.jsonl"
    prompts_only.write_text('{"prompt": "Hi there?"}\n')
    res = CliRunner().invoke(cli, ["eval", str(prompts_only), "-m", f"base={tiny_lm_dir}", "-j", "refnll",
                                   "--out", str(tmp_path / "e2")])
    assert res.exit_code == 1
    assert res.output == (f"Error: {prompts_only}: judge refnll needs a reference answer but 1 of 1 held-out rows "
                          "have none (give rows ending with the reference answer, or reference_column)\n")


def test_help_documents_every_judge():
    from thresher.evaluate.judges import KINDS

    res = CliRunner().invoke(cli, ["eval", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for kind in KINDS:
        assert kind in text, kind


def test_eval_json_is_a_named_artefact(tmp_path, heldout, tiny_lm_dir):
    from thresher.stage import artefact

    out = tmp_path / "ev"
    res = CliRunner().invoke(cli, ["eval", str(heldout), "-m", f"base={tiny_lm_dir}", "-j", "ends",
                                   "--max-tokens", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["artefacts"] == {"eval": "eval.json"}
    assert artefact(out, "eval") == out / "eval.json"
    assert "Only the base was evaluated: nothing to compare." in res.output
