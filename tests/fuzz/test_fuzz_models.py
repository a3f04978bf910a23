"""Fuzz the commands that load a model (tiny ones built in the fixtures): lint-masks, score,
generate and train, with hostile rows and random option values. Same invariant as
test_fuzz_cli.py; fewer cases (each loads a model)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import TEXT, budget, data_file, good_row, run_case
from tests.fuzz.test_fuzz_cli import FLOAT, INT, READ, flag, opt, options
from thresher.cli.main import cli


@budget(120)
@given(data_file(), READ, options(opt("--max-length", INT), opt("--train-on", st.sampled_from(["all", "last", "x"])),
                                  opt("--overlong", st.sampled_from(["drop", "truncate"])), opt("--show", INT),
                                  flag("--allow-special-tokens-in-content")))
def test_lint_masks(tiny_tokenizer_dir, f, read, opts):
    suffix, body = f
    run_case(cli, lambda d: ["train", "lint-masks", d / f"in{suffix}", "--base", tiny_tokenizer_dir, *read, *opts],
             {f"in{suffix}": body}, "lint-masks")


def _rows_file(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@budget(20)
@given(st.lists(good_row(), min_size=1, max_size=4),
       options(opt("--max-length", INT), opt("--batch-size", INT), opt("--overflow", st.sampled_from(
           ["truncate_left", "skip", "x"])), opt("--device", st.sampled_from(["cpu", "auto", "tpu9", "cuda:7"])),
           opt("--dtype", st.sampled_from(["float32", "bfloat16", "x"])), flag("--no-cache")))
def test_score(tiny_lm_dir, rows, opts):
    run_case(cli, lambda d: ["curate", "score", d / "in.jsonl", "--scorer", f"loglik:{tiny_lm_dir}",
                             "--out", d / "out", *opts], {"in.jsonl": _rows_file(rows)}, "score")


@budget(12)
@given(st.lists(good_row(), min_size=1, max_size=3),
       options(opt("--max-tokens", st.integers(-1, 4)), opt("--temperature", FLOAT), opt("--top-p", FLOAT),
               opt("-n", st.integers(-1, 2)), opt("--seed", INT), opt("--stop", TEXT)))
def test_generate(tiny_lm_dir, rows, opts):
    run_case(cli, lambda d: ["distill", "generate", d / "in.jsonl", "--teacher", tiny_lm_dir, "--backend",
                             "transformers", "--device", "cpu", "--out", d / "out", *opts],
             {"in.jsonl": _rows_file(rows)}, "generate")


@budget(6)
@given(st.lists(good_row(), min_size=1, max_size=4),
       options(opt("--rank", st.integers(-1, 4)), opt("--lr", FLOAT), opt("--batch-size", st.integers(-1, 3)),
               opt("--max-length", st.integers(-1, 128)), flag("--packing"), opt("--val-fraction", FLOAT)))
def test_train(tiny_lm_dir, rows, opts):
    run_case(cli, lambda d: ["train", "lora", d / "in.jsonl", "--base", tiny_lm_dir, "--max-steps", "1",
                             "--out", d / "out", *opts], {"in.jsonl": _rows_file(rows)}, "train")
