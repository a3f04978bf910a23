"""Checkpoints load without pickle (issue 22 section 6): a pickle planted in a checkpoint folder
never runs on resume; optimiser, scheduler and RNG states round-trip through JSON + safetensors.
Non-finite options and a NaN loss stop training with one line (issue 26 item 6b)."""

from __future__ import annotations

import json
import pickle

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli


class _Bomb:
    """Unpickling this creates ``marker`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(folder, marker, state: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rng.pt").write_bytes(pickle.dumps(_Bomb(str(marker))))
    if state is not None:
        (folder / "state.json").write_text(state)


def _train(data, base, out, *extra):
    return CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(base), "--out", str(out),
                                    "--batch-size", "4", "--max-length", "256", *map(str, extra)])


def test_planted_pickle_with_empty_state_never_runs(tmp_path, tiny_lm_dir):
    data = write_rows(tmp_path / "rows.jsonl", make_rows(8))
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    _plant(out / "checkpoints" / "step-00000001", marker, "{}")
    # a killed train run's folder: its running manifest marks it as thresher's
    (out / "manifest.json").write_text(json.dumps({"kind": "thresher-stage", "stage": "train", "status": "running"}))
    r = _train(data, tiny_lm_dir, out, "--max-steps", 1)
    assert r.exit_code == 1, r.output
    assert not marker.exists()
    line = r.output.strip().splitlines()[-1]
    assert line == (f"Error: {out / 'checkpoints' / 'step-00000001'}: checkpoint holds pickle files (rng.pt), "
                    "which thresher never loads (unpickling can run code); delete the folder or use --force "
                    "to start over")
    assert "weights_only" not in r.output
    r = _train(data, tiny_lm_dir, out, "--max-steps", 1, "--force")  # --force starts over
    assert r.exit_code == 0, r.output
    assert not marker.exists()


def test_planted_pickle_beside_a_real_checkpoint_never_runs(tmp_path, tiny_lm_dir):
    data = write_rows(tmp_path / "rows.jsonl", make_rows(8))
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    r = _train(data, tiny_lm_dir, out, "--max-steps", 2, "--save-every", 1)
    assert r.exit_code == 0, r.output
    last = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    assert sorted(p.name for p in last.iterdir() if p.suffix in (".pt", ".json", ".safetensors")) == [
        "adapter.safetensors", "adapter_config.json", "adapter_model.safetensors", "resume.json",
        "resume.safetensors", "state.json"]
    _plant(last, marker, None)  # the real state.json: the fingerprint matches
    r = _train(data, tiny_lm_dir, out, "--max-steps", 3, "--save-every", 1)
    assert r.exit_code == 1 and not marker.exists(), r.output
    assert "checkpoint holds pickle files (rng.pt)" in r.output


def test_state_round_trips_without_pickle(tmp_path):
    import random

    import numpy as np
    import torch

    from thresher.train import checkpoint as ck

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched.step()
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    st = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": [ck.rng_state()]}
    tensors: dict = {}
    doc = json.loads(json.dumps(ck.encode_state(st, tensors)))
    back = ck.decode_state(doc, tensors)
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt2.load_state_dict(back["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(back["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    with pytest.raises(TypeError):
        ck.encode_state({"f": object()}, {})


@pytest.mark.parametrize("opt", ["--lr", "--alpha", "--dropout", "--warmup", "--epochs", "--grad-clip"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_options_are_refused_before_any_work(tmp_path, opt, value):
    data = write_rows(tmp_path / "rows.jsonl", make_rows(2))
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--out", str(tmp_path / "o"), opt, value])
    assert r.exit_code == 1
    name = opt[2:].replace("-", "_")
    assert r.output.strip() == f"Error: {name}: must be a finite number, got {float(value)}"
    assert not (tmp_path / "o").exists()


def test_recipe_config_rejects_nan():
    from thresher.config import validate
    from thresher.train.config import TrainConfig

    assert validate(TrainConfig, {"lr": float("nan"), "alpha": float("inf"), "r": 4}) == [
        "lr: must be a finite number, got nan", "alpha: must be a finite number, got inf"]


def test_nan_loss_stops_with_one_line_and_writes_no_adapter(tmp_path, tiny_lm_dir):
    data = write_rows(tmp_path / "rows.jsonl", make_rows(8))
    out = tmp_path / "run"
    # an absurd learning rate blows the weights up after the first update
    r = _train(data, tiny_lm_dir, out, "--max-steps", 6, "--lr", "1e30", "--grad-clip", "0", "--warmup", "0",
               "--save-every", 1)
    assert r.exit_code == 1, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("Error: train: the loss ") and "stopping before the update (no adapter written)" in line
    assert not (out / "adapter").exists() and not (out / "stats.json").exists()
    for ck in (out / "checkpoints").glob("step-*"):  # checkpoints before the NaN are finite
        from safetensors.torch import load_file

        assert all(t.isfinite().all() for t in load_file(str(ck / "adapter.safetensors")).values())


def test_pickled_base_weights_are_refused_without_advising_weights_only_false(tmp_path, tiny_lm_dir):
    import shutil

    base, marker = tmp_path / "base", tmp_path / "PWNED"
    shutil.copytree(tiny_lm_dir, base)
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(pickle.dumps({"lm_head.weight": _Bomb(str(marker))}))
    data = write_rows(tmp_path / "rows.jsonl", make_rows(2))
    r = _train(data, base, tmp_path / "run", "--max-steps", 1)
    assert r.exit_code == 1 and not marker.exists(), r.output
    assert r.output.strip().splitlines()[-1] == (
        f"Error: cannot load base model {base}: its weights are a pickle file holding more than tensors, "
        "which thresher refuses to load (unpickling can run code); use a model saved as safetensors")
    assert "weights_only" not in r.output
