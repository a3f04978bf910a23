"""torchrun --distributed fsdp with 2 CPU processes (gloo, FSDP2 fully_shard): the same losses
as one process with the same global batch, and a SIGKILLed run resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli

STEPS = 8


def _args(data, base, out, batch):
    return ["train", "lora", str(data), "--base", str(base), "--out", str(out), "--max-steps", str(STEPS),
            "--batch-size", str(batch), "--grad-accum", "2", "--save-every", "2", "--max-length", "256",
            "--dropout", "0", "--lr", "3e-3", "--dtype", "fp32"]


def _torchrun(args, **kw):
    env = {**os.environ, "THRESHER_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "thresher.cli.main", *args, "--distributed", "fsdp"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, **kw)


def _losses(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if "loss" in r]
    assert len(steps) == len(set(steps)), "metrics.jsonl repeats steps after the resume"
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


@pytest.mark.slow
def test_fsdp_two_processes_match_one_and_resume_after_sigkill(tmp_path, tiny_lm_dir):
    from safetensors.torch import load_file

    data = write_rows(tmp_path / "rows.jsonl", make_rows(40))
    single = tmp_path / "single"
    r = CliRunner().invoke(cli, _args(data, tiny_lm_dir, single, 4))
    assert r.exit_code == 0, r.output

    run = tmp_path / "fsdp"
    proc = _torchrun(_args(data, tiny_lm_dir, run, 2))
    latest = run / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and latest.read_text().strip() >= "step-00000002":
            break
        time.sleep(0.02)
    assert proc.poll() is None, "torchrun ended before the kill: " + proc.stderr.read().decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (run / "adapter").exists()

    proc = _torchrun(_args(data, tiny_lm_dir, run, 2))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    err = err.decode()
    resumed = re.search(r"resuming from .*\(step (\d+) of (\d+)\)", err)
    assert resumed and 2 <= int(resumed[1]) < STEPS and int(resumed[2]) == STEPS, err[-2000:]
    assert json.loads((run / "stats.json").read_text())["processes"] == 2
    a, b = _losses(run), _losses(single)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in b:
        assert a[step] == pytest.approx(b[step], abs=1e-5), step
    wa = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(single / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] - wb[k]).abs().max() < 1e-5, k
