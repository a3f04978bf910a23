"""Compute precision: detection, forcing, and bf16 training's loss parity with fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401
from thresher.errors import ThresherError
from thresher.precision import Precision, cpu_bf16_flags, cpu_fast_bf16, normalize, resolve

#: bf16 loss parity (as benchmarks/precision.py): every step's training loss within 2% of
#: fp32's, and the mean relative difference over the steps within 1%
BF16_STEP_RTOL, BF16_MEAN_RTOL = 0.02, 0.01


def test_normalize_accepts_aliases_and_rejects_the_rest():
    assert [normalize(x) for x in ("auto", None, "FP32", "float32", "bf16", "bfloat16")] == \
        ["auto", "auto", "fp32", "fp32", "bf16", "bf16"]
    with pytest.raises(ThresherError) as e:
        normalize("fp16")
    assert str(e.value) == "dtype: must be one of auto, fp32, bf16, got 'fp16'"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    with_bf16 = tmp_path / "a"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx2\n")
    without = tmp_path / "b"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    arm = tmp_path / "c"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert cpu_bf16_flags(str(with_bf16)) == ("avx512_bf16",)
    assert cpu_bf16_flags(str(without)) == ()
    assert cpu_bf16_flags(str(arm)) == ("bf16",)
    assert cpu_bf16_flags(str(tmp_path / "missing")) is None


def test_auto_follows_the_cpu_flags(monkeypatch):
    import thresher.precision as precision

    monkeypatch.delenv("THRESHER_DTYPE", raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("amx_bf16",))
    assert resolve("auto", "cpu") == Precision("bf16", "CPU has amx_bf16")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert resolve("auto", "cpu") == Precision("fp32", "CPU has no bf16 instructions")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: None)  # no cpuinfo: timed matmul
    monkeypatch.setattr(precision, "timed_bf16_speedup", lambda: 3.0)
    assert cpu_fast_bf16() == (True, "bf16 matmul 3.0x fp32 on this CPU")
    assert resolve("fp32", "cpu") == Precision("fp32", "forced")
    assert resolve("bf16", "cpu").describe() == "precision: bf16 (forced)"
    monkeypatch.setenv("THRESHER_DTYPE", "fp32")
    assert resolve("auto", "cpu") == Precision("fp32", "THRESHER_DTYPE")


def test_train_cli_rejects_an_unknown_dtype(tmp_path):
    from click.testing import CliRunner

    from thresher.cli.main import cli

    data = write_rows(tmp_path / "rows.jsonl", make_rows(4))
    res = CliRunner().invoke(cli, ["train", "lora", str(data), "--out", str(tmp_path / "o"),
                                   "--dtype", "fp16"])
    assert res.exit_code == 2
    assert "'fp16' is not one of 'auto', 'fp32', 'bf16'" in res.output


def _train(tiny_lm_dir: Path, data: Path, out: Path, dtype: str) -> dict:
    from thresher.train.config import TrainConfig
    from thresher.train.stage import run

    cfg = TrainConfig(base=str(tiny_lm_dir), r=8, alpha=16, dropout=0.0, lr=3e-3, warmup=0.0,
                      schedule="constant", batch_size=2, max_steps=20, max_length=256, packing=True,
                      save_every=1000, dtype=dtype, seed=0)
    return run([data], out, cfg, force=True).stats


def test_bf16_training_matches_fp32_within_tolerance(tiny_lm_dir, tmp_path):
    """20 packed steps in bf16 (bf16 base, fp32 LoRA masters, autocast) vs fp32."""
    from safetensors.torch import load_file

    data = write_rows(tmp_path / "rows.jsonl", make_rows(80))
    ref = _train(tiny_lm_dir, data, tmp_path / "fp32", "fp32")
    low = _train(tiny_lm_dir, data, tmp_path / "bf16", "bf16")
    assert (ref["precision"], low["precision"]) == ("fp32", "bf16")
    a = [x for _, x in ref["losses"]]
    b = [x for _, x in low["losses"]]
    assert len(a) == len(b) == 20
    assert a[-1] < a[0] - 0.2 and b[-1] < b[0] - 0.2  # both actually learn
    rel = [abs(x - y) / x for x, y in zip(a, b)]
    (tmp_path / "curves.json").write_text(json.dumps({"fp32": a, "bf16": b}))
    assert max(rel) <= BF16_STEP_RTOL, f"bf16 loss off by {max(rel):.2%} (curves: {a} vs {b})"
    assert sum(rel) / len(rel) <= BF16_MEAN_RTOL
    adapter = load_file(str(tmp_path / "bf16" / "adapter" / "adapter_model.safetensors"))
    assert adapter and all(str(t.dtype) == "torch.float32" for t in adapter.values())


def test_scoring_and_generation_auto_follow_the_precision_rule(monkeypatch, tiny_lm_dir):
    import torch

    from thresher.curate.score.base import resolve_dtype
    from thresher.distill.backends.transformers import load_causal_lm

    monkeypatch.setenv("THRESHER_DTYPE", "bf16")
    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    assert load_causal_lm(str(tiny_lm_dir), dtype="auto")[2].dtype == torch.bfloat16
    monkeypatch.setenv("THRESHER_DTYPE", "fp32")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_one_parser_for_every_dtype_spelling(monkeypatch):
    """thresher.precision is the one dtype parser: the score stage's float16 and the generate
    backends' torch names go through it too."""
    import torch

    from thresher.curate.score.base import resolve_dtype
    from thresher.precision import torch_dtype

    monkeypatch.setenv("THRESHER_DTYPE", "fp32")
    assert [torch_dtype(x) for x in ("float32", "fp32", "float", "bfloat16", "bf16", "float16", "fp16", "half")] == \
        [torch.float32] * 3 + [torch.bfloat16] * 2 + [torch.float16] * 3
    assert torch_dtype("auto") == resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("float16", "cpu") == torch.float16
    assert normalize("half", fp16=True) == "fp16"
    with pytest.raises(ThresherError) as e:
        torch_dtype("int8")
    assert str(e.value) == "dtype: must be one of auto, fp32, bf16, fp16, got 'int8'"
