"""``thresher eval -j code`` on hostile answers served by a local OpenAI-compatible server:
the CLI (a real process holding OPENAI_API_KEY and a planted SECRET) runs every answer in
the sandbox; each hostile one fails and leaves nothing behind, checked from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tests.distill.loopback import ScriptedServer
from tests.sandbox import hostile as H

SECRET = "sk-cli-planted-SECRET-9876"


def thresher_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("thresher")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from thresher.cli.main import main; main()"]


@pytest.mark.slow
@pytest.mark.parametrize("cap", ["strongest", "fallback"])
def test_eval_code_judge_fails_every_hostile_answer(tmp_path, cap):
    os.chmod(tmp_path, 0o777)  # world-writable, like /tmp: only the sandbox stands in the way
    (tmp_path / "victim").write_text("keep")
    tcp = H.Server()
    answers = {"good": H.GOOD, "wrong": H.WRONG, "environ": H.environ(SECRET, []),
               "write": H.write_outside(tmp_path / "m_write", tmp_path / "victim"),
               "program": H.run_program(tmp_path / "m_prog"), "child": H.leave_child(tmp_path / "m_child"),
               "forkbomb": H.FORK_BOMB, "memory": H.ALLOCATE_8GB, "sleep": H.SLEEP, "tcp": H.connect(tcp.port),
               "sysexit": H.EARLY_EXITS["sys.exit(0)"], "osexit": H.EARLY_EXITS["os._exit(0)"],
               "atexit": H.EARLY_EXITS["atexit"]}
    server = ScriptedServer(content=lambda text: "```python\n" + answers[text.rsplit(" ", 1)[1]] + "```")
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"task {k}"}],
                                           "test": H.TESTS, "entry_point": "f"}) + "\n" for k in answers))
    out = tmp_path / "ev"
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "SECRET": SECRET, "THRESHER_PROGRESS": "0"}
    env.pop("THRESHER_SANDBOX_LEVEL", None)
    if cap != "strongest":
        env["THRESHER_SANDBOX_LEVEL"] = cap
    try:
        res = subprocess.run([*thresher_cmd(), "eval", str(heldout), "-m", "teacher=m", "--backend", "openai",
                              "--base-url", server.base_url, "-j", "code:2", "--out", str(out)],
                             capture_output=True, text=True, env=env, timeout=300)
        time.sleep(5)  # a straggler would write its marker or still be running now
        outside = {"wrote": (tmp_path / "m_write").exists(), "deleted": not (tmp_path / "victim").exists(),
                   "ran": (tmp_path / "m_prog").exists(), "late child": (tmp_path / "m_child").exists(),
                   "processes": H.processes_with("37." + H.TOKEN[-5:]), "connections": tcp.connections}
    finally:
        server.stop()
        tcp.close()
    assert res.returncode == 0, res.stderr
    rows = pl.read_parquet(out / "kept.parquet")
    got = {m[0]["content"].split()[-1]: v for m, v in zip(rows["messages"].to_list(), rows["eval_code"].to_list())}
    assert got == {k: (1.0 if k == "good" else 0.0) for k in answers}
    assert outside == {"wrote": False, "deleted": False, "ran": False, "late child": False, "processes": [],
                       "connections": 0}
    ev = json.loads((out / "eval.json").read_text())
    level = ev["sandbox"]["level"]
    assert f"code judge sandbox: {level}" in res.stdout
    assert SECRET not in res.stdout + res.stderr
    from thresher.report.eval_section import evaluation

    class _Stage:
        stats = {"eval": ev}

    class _Run:
        def by_name(self, name):
            return [_Stage()] if name == "eval" else []

    texts = [b[1] for b in evaluation(_Run()).blocks if b[0] == "text"]
    assert any(f"sandbox level {level!r}" in t for t in texts)  # the report names the level
    if cap == "fallback":
        assert level == "fallback" and res.stderr.count("network and filesystem are not isolated") == 1


def test_eval_help_offers_a_container_sandbox():
    from click.testing import CliRunner

    from thresher.cli.main import cli

    res = CliRunner().invoke(cli, ["eval", "--help"])
    assert res.exit_code == 0 and "--sandbox CMD" in res.output and "--base-url" in res.output
    assert "regex:{reference}" in res.output
