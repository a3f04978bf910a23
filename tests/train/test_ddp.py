"""torchrun with 2 CPU processes (gloo): same losses and adapter as one process with the same
global batch, because the loss is normalised by the step's global trainable-token count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli


def _args(data, base, out, batch):
    return ["train", "lora", str(data), "--base", str(base), "--out", str(out), "--max-steps", "4",
            "--batch-size", str(batch), "--grad-accum", "2", "--save-every", "2", "--max-length", "256",
            "--dropout", "0", "--lr", "3e-3", "--val-fraction", "0.15", "--eval-every", "2"]


def _metrics(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_two_processes_gloo_matches_one_process(tmp_path, tiny_lm_dir):
    from safetensors.torch import load_file

    data = write_rows(tmp_path / "rows.jsonl", make_rows(40))
    env = {**os.environ, "THRESHER_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    ddp = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "thresher.cli.main", *_args(data, tiny_lm_dir, ddp, 2)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = tmp_path / "single"
    r = CliRunner().invoke(cli, _args(data, tiny_lm_dir, single, 4))
    assert r.exit_code == 0, r.output

    stats = json.loads((ddp / "stats.json").read_text())
    assert stats["processes"] == 2
    a, b = _metrics(ddp), _metrics(single)
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) == 6  # 4 steps + 2 evaluations
    for x, y in zip(a, b):
        key = "loss" if "loss" in x else "val_loss"
        assert x[key] == pytest.approx(y[key], abs=1e-5), (x, y)
        if key == "loss":
            assert x["tokens"] == y["tokens"] and x["trainable_tokens"] == y["trainable_tokens"]
    wa = load_file(str(ddp / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(single / "adapter" / "adapter_model.safetensors"))
    for k in wa:
        assert (wa[k] - wb[k]).abs().max() < 1e-5, k
