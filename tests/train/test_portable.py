"""Portable training outputs (issue 14): the adapter names its base by hub id and loads in a
fresh process where only that hub id resolves (a local hub-cache mirror); checkpoints are
peft-loadable; the merged model keeps the base dtype; TensorBoard events, plain log lines,
trainer_state.json and --report-to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli

REPO = "thresher-test/tiny-chat"


def _mirror(tiny_lm_dir: Path, root: Path, dtype: str = "bfloat16") -> Path:
    """An HF_HUB_CACHE folder in which REPO resolves offline to the tiny model (saved in ``dtype``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + REPO.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), dtype=getattr(torch, dtype))
    model.save_pretrained(str(snap))
    AutoTokenizer.from_pretrained(str(tiny_lm_dir)).save_pretrained(str(snap))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_lm_dir):
    """One run on the tiny model, named by hub id through a mirror: (run folder, mirror, output)."""
    import huggingface_hub.constants as hc

    tmp = tmp_path_factory.mktemp("portable")
    mirror = _mirror(tiny_lm_dir, tmp / "hub")
    data = write_rows(tmp / "rows.jsonl", make_rows(40))
    out = tmp / "run"
    saved = hc.HF_HUB_CACHE
    hc.HF_HUB_CACHE = str(mirror)
    try:
        r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", REPO, "--out", str(out),
                                     "--max-steps", "6", "--batch-size", "4", "--lr", "3e-3",
                                     "--val-fraction", "0.1", "--eval-every", "3", "--save-every", "3",
                                     "--log-every", "2", "--merge", "--max-length", "256",
                                     "--keep-checkpoints", "3"])
    finally:
        hc.HF_HUB_CACHE = saved
    assert r.exit_code == 0, r.output
    return out, mirror, r.output


def test_adapter_names_the_hub_id_and_keeps_the_path_in_stats(trained):
    out, mirror, _ = trained
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == REPO
    card = (out / "adapter" / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {REPO}\nlibrary_name: peft\n")
    assert "| final train loss |" in card and "| best validation loss |" in card and "| lr | 0.003 |" in card
    assert str(mirror) not in card and str(mirror) not in json.dumps(cfg)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["export"]["base_model"] == REPO
    assert stats["export"]["base_local_path"].startswith(str(mirror))


@pytest.mark.slow
def test_adapter_loads_in_a_fresh_process_with_only_the_hub_id(trained, tmp_path):
    out, mirror, _ = trained
    code = ("import sys, torch\nfrom peft import AutoPeftModelForCausalLM\n"
            "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1])\n"
            "print(m.peft_config['default'].base_model_name_or_path, "
            "sum(p.numel() for n, p in m.named_parameters() if 'lora_' in n))\n")
    env = {**os.environ, "HF_HUB_CACHE": str(mirror), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-c", code, str(out / "adapter")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    name, n_lora = res.stdout.split()
    assert name == REPO and int(n_lora) > 0


def test_every_checkpoint_is_peft_loadable(trained, tiny_lm_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _, _ = trained
    folders = sorted((out / "checkpoints").glob("step-*")) + [out / "checkpoints" / "best"]
    assert [f.name for f in folders] == ["step-00000003", "step-00000006", "best"]
    for f in folders:
        assert json.loads((f / "adapter_config.json").read_text())["base_model_name_or_path"] == REPO
        base = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), dtype=torch.float32)
        m = PeftModel.from_pretrained(base, str(f))
        assert any("lora_A" in n for n, _ in m.named_parameters())


def test_merged_model_keeps_the_base_dtype(trained):
    from safetensors import safe_open

    out, _, _ = trained
    cfg = json.loads((out / "merged" / "config.json").read_text())
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16"
    with safe_open(str(out / "merged" / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"BF16"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["export"]["dtype"] == "bfloat16"


def test_tensorboard_events_by_default(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = trained
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_s", "eval/loss"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in acc.Scalars("eval/loss")] == [3, 6]
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(losses, rel=1e-6)


def test_plain_log_lines_and_trainer_state(trained):
    out, _, output = trained
    lines = [x for x in output.splitlines() if x.startswith("train step ")]
    assert [x.split()[2] for x in lines] == ["2/6", "4/6", "6/6"]  # every 2 steps, once each
    assert all(" loss " in x and " lr " in x and " tok/s " in x for x in lines)
    evals = [x for x in output.splitlines() if x.startswith("train eval at step ")]
    assert [x.split()[4] for x in evals] == ["3/6:", "6/6:"]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["max_steps"] == 6
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h] == [3, 6]
    assert state["best_metric"] == min(h["eval_loss"] for h in state["log_history"] if "eval_loss" in h)


@pytest.mark.parametrize("target", ["wandb", "mlflow", "trackio"])
def test_report_to_a_missing_package_is_one_line(tmp_path, tiny_lm_dir, target):
    import importlib.util

    if importlib.util.find_spec(target) is not None:
        pytest.skip(f"{target} is installed here")
    data = write_rows(tmp_path / "rows.jsonl", make_rows(4))
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out",
                                 str(tmp_path / "run"), "--report-to", target])
    assert r.exit_code == 1
    assert r.output == f"Error: --report-to {target}: the {target} package is not installed (pip install {target})\n"


def test_report_to_unknown_and_none(tmp_path, tiny_lm_dir):
    data = write_rows(tmp_path / "rows.jsonl", make_rows(8))
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out",
                                 str(tmp_path / "bad"), "--report-to", "comet"])
    assert r.exit_code != 0 and "report_to: unknown target 'comet'" in r.output
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out",
                                 str(tmp_path / "run"), "--report-to", "none", "--max-steps", "2",
                                 "--max-length", "256"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "run" / "tensorboard").exists()
    cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_lm_dir)  # the user's own base name, as given


def test_embedded_default_is_named_by_its_hub_id(tmp_path):
    from thresher.train.portable import base_identity

    ident = base_identity("smollm2", tmp_path / ".cache" / "thresher" / "models" / "SmolLM2-135M-Instruct")
    assert (ident.hub_id, ident.dtype) == ("HuggingFaceTB/SmolLM2-135M-Instruct", "bfloat16")
    assert "dequantised from its Q4_1 GGUF" in ident.note
    assert base_identity(None, tmp_path).hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
