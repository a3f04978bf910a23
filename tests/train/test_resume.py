"""Kill a real training process with SIGKILL and rerun the command: it resumes from the last
checkpoint and reproduces the uninterrupted run's losses and adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli

STEPS = 24


def _args(data, base, out):
    # dropout > 0: resuming must restore the RNG state too, not just weights and optimiser
    return ["train", "lora", str(data), "--base", str(base), "--out", str(out), "--max-steps", str(STEPS),
            "--batch-size", "4", "--grad-accum", "2", "--save-every", "3", "--dropout", "0.1",
            "--lr", "3e-3", "--max-length", "256"]


def _losses(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if "loss" in r]
    assert len(steps) == len(set(steps)), "metrics.jsonl repeats steps after the resume"
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_reproduces(tmp_path, tiny_lm_dir):
    from safetensors.torch import load_file

    data = write_rows(tmp_path / "rows.jsonl", make_rows(48))
    ref = tmp_path / "ref"
    r = CliRunner().invoke(cli, _args(data, tiny_lm_dir, ref))
    assert r.exit_code == 0, r.output

    run = tmp_path / "killed"
    env = {**os.environ, "THRESHER_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "thresher.cli.main", *_args(data, tiny_lm_dir, run)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and latest.read_text().strip() >= "step-00000006":
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = int(latest.read_text().strip().split("-")[1])
    assert 6 <= killed_at < STEPS
    assert not (run / "adapter").exists()

    r = CliRunner().invoke(cli, _args(data, tiny_lm_dir, run))
    assert r.exit_code == 0, r.output
    assert "resuming from" in r.output and f"step {killed_at} of {STEPS}" in r.output
    want, got = _losses(ref), _losses(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(killed_at + 1, STEPS + 1):
        assert got[step] == pytest.approx(want[step], abs=1e-7), step
    a = load_file(str(ref / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-6, k
