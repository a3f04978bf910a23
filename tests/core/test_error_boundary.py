"""The CLI's error boundary: OS errors name their path, anything unexpected is one line that
points to THRESHER_DEBUG=1, and the listed hostile inputs are one-line errors at the source."""

from __future__ import annotations

import json
import os

import click
import pytest
from click.testing import CliRunner

from tests.conftest import ROW, invoke, one_error_line
from thresher.cli.main import RootGroup, cli, os_error_message


def test_out_is_a_folder(rows, tmp_path):
    (tmp_path / "x.parquet").mkdir()
    msg = one_error_line(invoke("convert", rows, tmp_path / "x.parquet"))
    assert msg == f"Error: {tmp_path / 'x.parquet'}: is a folder; give a file name (e.g. {tmp_path / 'x.parquet' / 'out.parquet'})"


def test_out_parent_is_a_file(rows, tmp_path):
    msg = one_error_line(invoke("convert", rows, rows / "x.parquet"))
    assert msg == f"Error: {rows / 'x.parquet'}: {rows} is a file, not a folder"
    msg = one_error_line(invoke("curate", "filter", rows, "--out", rows / "f"))
    assert msg == f"Error: {rows / 'f'}: {rows} is a file, not a folder"


def test_existing_folder_is_never_replaced_by_a_dataset(rows, tmp_path):
    """`convert IN ~/work` used to swap the whole folder out for a dataset and delete it."""
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("do not delete")
    msg = one_error_line(invoke("convert", rows, keep))
    assert msg.startswith(f"Error: {keep}: folder exists and is not a dataset folder; refusing to replace it")
    assert (keep / "precious.txt").read_text() == "do not delete"
    assert invoke("convert", rows, tmp_path / "ds").exit_code == 0
    assert invoke("convert", rows, tmp_path / "ds").exit_code == 0  # a dataset folder is replaced


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_out_folder(rows, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        msg = one_error_line(invoke("convert", rows, ro / "x.parquet"))
        assert msg == f"Error: {ro / 'x.parquet'}: cannot write in {ro} (permission denied)"
        one_error_line(invoke("curate", "filter", rows, "--out", ro / "f"))
    finally:
        ro.chmod(0o755)


def test_os_error_messages():
    assert os_error_message(PermissionError(13, "Permission denied", "/ro/x")) == \
        "/ro/x: permission denied (read-only or not yours?)"
    assert os_error_message(IsADirectoryError(21, "Is a directory", "/d")) == "/d: is a folder, not a file"
    assert os_error_message(NotADirectoryError(20, "Not a directory", "/f/x")) == \
        "/f/x: a part of this path is a file, not a folder"
    assert os_error_message(OSError(28, "No space left on device", "/full/x", None, "/full/y")) == \
        "/full/x -> /full/y: no space left on device"


def _group_raising(exc):
    @click.group(cls=RootGroup)
    def g():
        pass

    @g.command()
    def boom():
        raise exc

    return g


@pytest.mark.parametrize("exc, text", [
    (KeyError("x"), "Error: unexpected error (KeyError: 'x'); rerun with THRESHER_DEBUG=1 for the traceback"),
    (RecursionError("maximum recursion depth exceeded"),
     "Error: unexpected error (input nested too deeply); rerun with THRESHER_DEBUG=1 for the traceback"),
    (PermissionError(13, "Permission denied", "/ro/x"), "Error: /ro/x: permission denied (read-only or not yours?)"),
])
def test_unexpected_exception_is_one_line(exc, text, monkeypatch):
    monkeypatch.delenv("THRESHER_DEBUG", raising=False)
    res = CliRunner().invoke(_group_raising(exc), ["boom"])
    assert one_error_line(res) == text
    monkeypatch.setenv("THRESHER_DEBUG", "1")
    res = CliRunner().invoke(_group_raising(exc), ["boom"])
    assert res.exception is exc  # the traceback gets through


SURROGATE = '{"id":"s","messages":[{"role":"user","content":"\\ud800 hi"},{"role":"assistant","content":"yo"}]}\n'


@pytest.fixture
def surrogate(tmp_path):
    p = tmp_path / "sur.jsonl"
    p.write_text(SURROGATE + json.dumps(ROW) + "\n")
    return p


@pytest.mark.parametrize("cmd", [
    ["convert", "{src}", "{out}.parquet"],
    ["stats", "{src}"],
    ["curate", "dedup", "{src}", "--out", "{out}"],
    ["curate", "filter", "{src}", "--out", "{out}"],
])
def test_lone_surrogate_is_a_bad_row(cmd, surrogate, tmp_path):
    args = [a.format(src=surrogate, out=tmp_path / "o") for a in cmd]
    msg = one_error_line(CliRunner().invoke(cli, args))
    assert msg == f"Error: {surrogate}:1: lone surrogate '\\ud800' in a string (not valid Unicode)"
    res = CliRunner().invoke(cli, [*args, "--on-bad-rows", "skip"])
    assert res.exit_code == 0, res.output


def test_lone_surrogate_skip_writes_a_reject(surrogate, tmp_path):
    res = invoke("convert", surrogate, tmp_path / "o.parquet", "--on-bad-rows", "skip")
    assert res.exit_code == 0, res.output
    rej = [json.loads(x) for x in (tmp_path / "o.rejects.jsonl").read_text().splitlines()]
    assert [(r["where"], r["code"]) for r in rej] == [("1", "invalid-unicode")]


def test_lone_surrogate_in_json_array(tmp_path):
    p = tmp_path / "sur.json"
    p.write_text("[" + SURROGATE.strip() + "]")
    msg = one_error_line(invoke("convert", p, tmp_path / "o.parquet"))
    assert msg == f"Error: {p}:row 1: lone surrogate '\\ud800' in a string (not valid Unicode)"


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_deeply_nested_json(name, tmp_path):
    p = tmp_path / name
    p.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    msg = one_error_line(invoke("convert", p, tmp_path / "o.parquet"))
    assert msg == f"Error: {p}:1: nested too deeply (more than 32 levels)"


def test_bad_regex_in_mix_rule(rows, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text('total: 1\ncategories:\n  code: {count: 1}\nrules:\n  - {category: code, regex: "("}\n')
    msg = one_error_line(invoke("curate", "mix", rows, "--spec", spec, "--out", tmp_path / "m"))
    assert msg == f"Error: {spec}: spec.rules[0].regex: invalid (unclosed group)"


@pytest.mark.parametrize("device, text", [
    ("tpu9", "device: unknown device 'tpu9' (expected auto, cpu, cuda, cuda:N or mps)"),
    ("cuda", "device: cuda asked for, but no CUDA GPU is visible on this machine (use --device cpu)"),
])
def test_score_device_checked_before_loading(device, text, rows, tmp_path, monkeypatch):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    import thresher.models as models

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the device was checked")

    monkeypatch.setattr(models, "resolve_model", no_load)
    msg = one_error_line(invoke("curate", "score", rows, "--device", device, "--out", tmp_path / "s"))
    assert msg == f"Error: {text}"


def test_lone_surrogate_in_a_recipe_input(surrogate, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: s\ninputs:\n  - path: {surrogate}\nstages:\n  - filter: {{min_chars: 1}}\n")
    msg = one_error_line(invoke("run", recipe, "--out", tmp_path / "run"))
    assert msg == f"Error: {surrogate}:1: lone surrogate '\\ud800' in a string (not valid Unicode)"


UNWRITABLE = "/sys/thresher-no-such-out"  # sysfs refuses mkdir even for root


def _sys_refuses() -> bool:
    try:
        os.mkdir(UNWRITABLE)
    except OSError:
        return True
    os.rmdir(UNWRITABLE)
    return False


@pytest.mark.skipif(not _sys_refuses(), reason="needs a folder nobody may create in (Linux /sys)")
@pytest.mark.parametrize("cmd", [
    ["convert", "{rows}", UNWRITABLE + "/o.parquet"],
    ["curate", "filter", "{rows}", "--out", UNWRITABLE],
    ["curate", "dedup", "{rows}", "--out", UNWRITABLE],
    ["run", "{recipe}", "--out", UNWRITABLE],
    ["report", "{run}", "--out", UNWRITABLE],
], ids=["convert", "filter", "dedup", "run", "report"])
def test_unwritable_out_folder_is_one_line(cmd, rows, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: s\ninputs:\n  - path: {rows}\nstages:\n  - filter: {{min_chars: 1}}\n")
    run = tmp_path / "run"
    if "{run}" in cmd:
        assert invoke("run", recipe, "--out", run).exit_code == 0
    args = [a.format(rows=rows, recipe=recipe, run=run) for a in cmd]
    msg = one_error_line(CliRunner().invoke(cli, args))
    assert UNWRITABLE in msg and ("permission denied" in msg or "read-only" in msg.lower()), msg


def test_deeply_nested_json_in_a_csv_cell(tmp_path):
    p = tmp_path / "deep.csv"
    p.write_text('messages,id\n"' + "[" * 100_000 + "]" * 100_000 + '",x\n')
    msg = one_error_line(invoke("convert", p, tmp_path / "o.parquet"))
    assert msg == f"Error: {p}:2: 'messages': malformed JSON in cell (nested too deeply)"


def test_not_a_folder_names_the_file_in_the_way(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert os_error_message(NotADirectoryError(20, "Not a directory", str(f / "a" / "b"))) == \
        f"{f / 'a' / 'b'}: {f} is a file, not a folder"
