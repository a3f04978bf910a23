"""Recipes and published files against a careless or hostile user (issues 22 and 26): recipe
names, run folders, locks, alias bombs, bounds, NaN, `why`, `export --to` and the Markdown we
publish. Real stages (filter) on small files; no model loads."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.conftest import invoke as _invoke

HINT = "choose another --out, or pass --force to replace it"


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _conv(q: str, a: str, **extra) -> dict:
    return {**extra, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture
def data(tmp_path):
    return _rows(tmp_path / "d.jsonl", [_conv(f"question {i}", f"a fairly long answer number {i}") for i in range(4)])


def _recipe(tmp_path: Path, data: Path, name: str = "safe", stages=None, file: str = "r.yaml") -> Path:
    p = tmp_path / file
    p.write_text(yaml.safe_dump({"name": name, "inputs": [{"path": str(data)}],
                                 "stages": stages or [{"filter": {}}]}, sort_keys=False))
    return p


# ---------------------------------------------------------------- issue 22, 4: writes outside the run


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", "..", "-x"])
def test_a_recipe_name_must_be_one_folder_name(name, tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _recipe(tmp_path, data, name=name)
    res = _invoke("run", r)
    assert res.exit_code == 1
    assert res.output == (f"Error: {r}: name: must be one folder name (letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit, at most 100 characters; it names runs/NAME), "
                          f"got {name!r}\n")
    assert sorted(os.listdir(tmp_path)) == ["d.jsonl", "r.yaml"]  # nothing written anywhere


def test_an_empty_recipe_name_is_refused(tmp_path, data):
    r = _recipe(tmp_path, data, name="")
    res = _invoke("recipe", "validate", r)
    assert res.output == f"Error: {r}: name: expected a non-empty string, got ''\n"


def test_run_out_a_non_empty_folder_that_is_not_a_run_is_refused(tmp_path, data):
    r, proj = _recipe(tmp_path, data), tmp_path / "proj"
    proj.mkdir()
    (proj / "main.py").write_text("print('mine')")
    res = _invoke("run", r, "--out", proj)
    assert res.exit_code == 1
    assert res.output == (f"Error: {proj}: is not empty and is not a thresher run folder (it holds main.py); "
                          f"{HINT}\n")
    assert os.listdir(proj) == ["main.py"]
    res = _invoke("run", r, "--out", proj, "--force")
    assert res.exit_code == 0, res.output
    assert (proj / "main.py").read_text() == "print('mine')"
    assert _invoke("run", r, "--out", proj).exit_code == 0  # now a run folder of this recipe


HOLD = ("import sys, time; from thresher.stage_folder import acquire; acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(30)")


def test_two_runs_of_one_recipe_the_second_names_the_first(tmp_path, data):
    r, run_dir = _recipe(tmp_path, data), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        info = json.loads((run_dir / ".thresher.lock").read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        res = _invoke("run", r, "--out", run_dir)
        assert res.exit_code == 1
        assert res.output == (f"Error: {run_dir}: this run folder is in use by pid {holder.pid} on "
                              f"{socket.gethostname()}, since {since}, {info['command']}; wait for it to "
                              "finish, or rerun with --wait\n")
        assert os.listdir(run_dir) == [".thresher.lock"]
    finally:
        holder.kill()
        holder.wait()
    assert _invoke("run", r, "--out", run_dir, "--wait").exit_code == 0


def test_out_inside_the_recipes_input_folder_reuses_the_inputs_stage(tmp_path):
    import datasets

    hf = tmp_path / "hf"
    datasets.Dataset.from_list([_conv("hi there", "hello, friend")]).save_to_disk(str(hf))
    r = tmp_path / "r.yaml"
    r.write_text(yaml.safe_dump({"name": "inside", "inputs": [{"path": str(hf)}], "stages": [{"filter": {}}]}))
    assert _invoke("run", r, "--out", hf / "run").exit_code == 0
    res = _invoke("run", r, "--out", hf / "run")
    assert res.exit_code == 0, res.output
    assert "| inputs | 00-inputs | reused |" in res.output and "| filter | 01-filter | reused |" in res.output


# ---------------------------------------------------------------- issue 22, 9 and issue 26, 17 / 6b


def _bomb(levels: int) -> str:
    lines = ['name: bomb', 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join([*lines, "inputs: [{path: x}]", f"stages: [{{filter: {{min_chars: *a{levels - 1}}}}}]"]) + "\n"


@pytest.mark.parametrize("levels", [7, 9])
def test_a_yaml_alias_bomb_is_refused_at_once_in_one_short_line(levels, tmp_path):
    r = tmp_path / "bomb.yaml"
    r.write_text(_bomb(levels))
    t0 = time.monotonic()
    res = _invoke("recipe", "validate", r)
    assert time.monotonic() - t0 < 1.0
    assert res.exit_code == 1
    assert res.output == (f"Error: {r}:1: invalid YAML: its aliases expand to more than 100000 values "
                          "(an alias bomb?); write the values out or use fewer aliases\n")
    assert len(res.output) <= 300


def test_a_small_alias_fan_out_is_quoted_short(tmp_path):
    r = tmp_path / "fan.yaml"
    r.write_text(_bomb(4))
    res = _invoke("recipe", "validate", r)
    assert res.exit_code == 1 and len(res.output) < 400
    assert "stages[0].filter.min_chars: expected an integer, got [[[...], [...]" in res.output


def test_insane_sizes_are_refused_with_the_reason(tmp_path, data):
    r = _recipe(tmp_path, data, stages=[{"generate": {"max_tokens": 10**12}}, {"dedup": {"num_perm": 10**8}},
                                        {"filter": {"min_chars": 10**23}}])
    res = _invoke("recipe", "validate", r)
    assert res.exit_code == 1
    assert res.output == (
        f"Error: {r}: 3 problems: stages[0].generate.max_tokens: at most 1048576 (longer than any model's "
        "context window), got 1000000000000; stages[1].dedup.num_perm: at most 8192 (more MinHash "
        "permutations than help; each costs 4 bytes and a hash per row), got 100000000; "
        "stages[2].filter.min_chars: at most 2147483647 (no row is that long; lengths are 32-bit counts), "
        "got 100000000000000000000000\n")
    res = _invoke("curate", "filter", data, "--out", tmp_path / "f", "--min-chars", 10**23)
    assert res.output == ("Error: min_chars: at most 2147483647 (no row is that long; lengths are 32-bit "
                          "counts), got 100000000000000000000000\n")


def test_nan_and_infinity_are_refused_for_every_numeric_option(tmp_path, data):
    r = tmp_path / "nan.yaml"
    r.write_text(f"name: nan\ninputs: [{{path: {data}}}]\nstages:\n"
                 "  - generate: {temperature: .nan, top_p: .inf}\n  - dedup: {threshold: -.inf}\n")
    res = _invoke("recipe", "validate", r)
    assert res.output == (f"Error: {r}: 3 problems: stages[0].generate.temperature: must be a finite number, "
                          "got nan; stages[0].generate.top_p: must be a finite number, got inf; "
                          "stages[1].dedup.threshold: must be a finite number, got -inf\n")
    res = _invoke("curate", "dedup", data, "--out", tmp_path / "d", "--threshold", "nan")
    assert res.output == "Error: threshold: must be a finite number, got nan\n"
    assert not (tmp_path / "d").exists()
    res = _invoke("train", "lora", data, "--out", tmp_path / "t", "--alpha", "nan", "--lr", "inf", "--max-steps", 1)
    assert res.output == "Error: 2 problems: alpha: must be a finite number, got nan; lr: must be a finite number, got inf\n"
    assert not (tmp_path / "t").exists()  # refused before any model loads


# ---------------------------------------------------------------- issue 26, 15: openai-batch


def test_openai_batch_first_step_waits_with_its_own_exit_status(tmp_path, data):
    r = _recipe(tmp_path, data, stages=[{"generate": {"backend": "openai-batch", "teacher": "gpt-4o-mini"}},
                                        {"filter": {}}])
    run_dir = tmp_path / "run"
    res = _invoke("run", r, "--out", run_dir)
    assert res.exit_code == 75  # thresher.errors.EXIT_WAITING: nothing failed
    req = run_dir / "01-generate" / "openai-batch-requests.jsonl"
    assert res.output.splitlines()[-1] == (
        f"generate ({run_dir / '01-generate'}): waiting for batch results: openai-batch: wrote 4 requests to "
        f"{req}; submit it to the OpenAI Batch API (endpoint /v1/chat/completions), download the output file "
        "and rerun thresher run with --set stages[0].batch_results=FILE")
    assert "Error" not in res.output
    assert json.loads((run_dir / "summary.json").read_text())["waiting"]["stage"] == "generate"


# ---------------------------------------------------------------- issue 26, 16: why


def test_why_an_exact_id_wins_over_a_prefix_of_others(tmp_path):
    src = _rows(tmp_path / "ids.jsonl", [_conv("q one", "a fairly long answer one", id="a"),
                                         _conv("q two", "a fairly long answer two", id="ab"),
                                         _conv("q three", "short", id="ac")])
    r, out = _recipe(tmp_path, src, stages=[{"filter": {"min_chars": 20}}]), tmp_path / "run"
    assert _invoke("run", r, "--out", out).exit_code == 0
    res = _invoke("why", out, "a")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == (f"row a survived every stage: it is in the final dataset "
                                          f"({out / '01-filter' / 'kept.parquet'})")
    assert _invoke("why", out, "ac").output.startswith("row ac was dropped by stage 01-filter")


# ---------------------------------------------------------------- issue 26: export --to


@pytest.fixture
def run_dir(tmp_path, data):
    r, out = _recipe(tmp_path, data, name="exp"), tmp_path / "run"
    assert _invoke("run", r, "--out", out).exit_code == 0
    return out


def test_export_refuses_a_project_folder_and_force_never_deletes_its_files(tmp_path, run_dir):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "README.md").write_text("x")
    (proj / "src" / "code.py").write_text("y")
    res = _invoke("export", run_dir, "--to", proj)
    assert res.exit_code == 1
    assert res.output == (f"Error: {proj}: is not empty and was not written by thresher export (it holds "
                          "README.md, src); choose another --to, or pass --force to add the export to it "
                          "(nothing else in it is changed)\n")
    assert (proj / "README.md").read_text() == "x" and (proj / "src" / "code.py").read_text() == "y"
    res = _invoke("export", run_dir, "--to", proj, "--force")
    assert res.exit_code == 0, res.output
    assert (proj / "src" / "code.py").read_text() == "y" and "Dataset card" in (proj / "README.md").read_text()
    (proj / "data" / "mine.csv").write_text("the user's, beside the export")
    assert _invoke("export", run_dir, "--to", proj).exit_code == 0  # now thresher's export: no --force
    assert (proj / "src" / "code.py").read_text() == "y" and (proj / "data" / "mine.csv").exists()


def test_a_re_export_removes_only_what_the_last_export_wrote(tmp_path, run_dir):
    out = tmp_path / "hub"
    assert _invoke("export", run_dir, "--to", out).exit_code == 0
    record = json.loads((out / ".thresher-export.json").read_text())
    assert record["files"] == ["README.md", "data/train-00000-of-00001.parquet", "report.html"]
    (out / "notes.md").write_text("mine")
    record["files"].append("data/old-split.parquet")  # a split an earlier export wrote
    (out / ".thresher-export.json").write_text(json.dumps(record))
    (out / "data" / "old-split.parquet").write_bytes(b"old")
    assert _invoke("export", run_dir / "01-filter", "--to", out).exit_code == 0
    assert not (out / "data" / "old-split.parquet").exists() and (out / "notes.md").read_text() == "mine"


def test_the_card_names_report_html_only_when_it_is_beside_it(tmp_path, run_dir):
    out = tmp_path / "hub"
    assert _invoke("export", run_dir, "--to", out).exit_code == 0
    card = (out / "README.md").read_text()
    assert "Plots of every section are in `report.html` beside this file." in card
    assert (out / "report.html").read_text().startswith("<!doctype html>")


# ---------------------------------------------------------------- issue 22, 5: Markdown injection


PAYLOADS = ["```", "~~~", "<script>alert('x')</script>", "</details><img src=x onerror=alert(1)>",
            "| a | b |", "[a](javascript:alert(1))", "# head\r```python", "*bold* _it_ <b>b</b>"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _rendered(markdown: str) -> _Tags:
    """The card as the hub shows it: front matter off, CommonMark + tables with raw HTML on."""
    from markdown_it import MarkdownIt

    body = markdown.split("\n---\n", 1)[1] if markdown.startswith("---\n") else markdown
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    parsed = _Tags()
    parsed.feed(html)
    return parsed


def test_data_in_the_card_and_report_md_renders_as_text(tmp_path):
    rows = [_conv(f"question {p}", f"an answer long enough {p}\n```\n<script>bad()</script>", id=f"id{i}{p}",
                  category=f"cat{p}") for i, p in enumerate(PAYLOADS)]
    src = _rows(tmp_path / "inj.jsonl", rows)
    r = tmp_path / "r.yaml"
    r.write_text(yaml.safe_dump({"name": "inj", "inputs": [{"path": str(src)}],
                                 "stages": [{"filter": {"min_chars": 62}}, {"report": {}}]}))
    run_dir, hub = tmp_path / "run", tmp_path / "hub"
    assert _invoke("run", r, "--out", run_dir).exit_code == 0
    assert _invoke("export", run_dir, "--to", hub).exit_code == 0
    for md in (hub / "README.md", run_dir / "report.md"):
        page = _rendered(md.read_text())
        assert set(page.tags) <= {"h1", "h2", "p", "table", "thead", "tbody", "tr", "th", "td", "code",
                                  "strong", "details", "summary", "ul", "li", "em"}, (md, set(page.tags))
        assert "script" not in page.tags and "pre" not in page.tags and "img" not in page.tags
        text = "".join(page.text)
        for p in ("<script>alert('x')</script>", "</details><img src=x onerror=alert(1)>",
                  "[a](javascript:alert(1))", "*bold* _it_ <b>b</b>", "| a | b |"):
            assert f"cat{p}" in text, (md, p)  # the category, shown as itself
        assert "<script>bad()</script>" in text


# ---------------------------------------------------------------- issue 26, 18: stderr noise


def test_no_library_noise_on_stderr_under_thresher_progress_0(tmp_path):
    src = _rows(tmp_path / "d.jsonl", [_conv(f"q{i}", f"an answer long enough {i}", category=f"c\r{i % 2} $x")
                                       for i in range(4)])
    r = _recipe(tmp_path, src, name="noise")
    env = {**os.environ, "THRESHER_PROGRESS": "0"}
    for key in ("TRANSFORMERS_VERBOSITY", "HF_DATASETS_DISABLE_PROGRESS_BARS", "PYTHONWARNINGS"):
        env.pop(key, None)
    exe = [sys.executable, "-m", "thresher.cli.main"]
    run = subprocess.run([*exe, "run", str(r), "--out", str(tmp_path / "run")], env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    res = subprocess.run([*exe, "export", str(tmp_path / "run"), "--to", str(tmp_path / "hub")], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == ""  # no matplotlib glyph warnings for a \r category
    probe = ("import os; from thresher.cli.main import quiet_libraries; quiet_libraries(); "
             "print(os.environ['TRANSFORMERS_VERBOSITY'], os.environ['HF_DATASETS_DISABLE_PROGRESS_BARS'])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout
    assert out == "error 1\n"


def test_the_card_in_a_headless_browser_runs_no_script(tmp_path):
    """The rendered card in a real browser (skipped where chromium is not installed)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    from markdown_it import MarkdownIt

    evil = ["<script>document.title='PWNED'</script>", "<img src=x onerror=\"document.title='PWNED'\">",
            "```\n<script>document.title='PWNED'</script>", "</details><svg onload=\"document.title='PWNED'\">"]
    rows = [_conv(f"q {p}", f"an answer long enough {p}", id=f"i{i}{p}", category=f"c{p}") for i, p in enumerate(evil)]
    r = tmp_path / "r.yaml"
    r.write_text(yaml.safe_dump({"name": "web", "inputs": [{"path": str(_rows(tmp_path / "e.jsonl", rows))}],
                                 "stages": [{"filter": {}}]}))
    assert _invoke("run", r, "--out", tmp_path / "run").exit_code == 0
    assert _invoke("export", tmp_path / "run", "--to", tmp_path / "hub").exit_code == 0
    body = (tmp_path / "hub" / "README.md").read_text().split("\n---\n", 1)[1]
    page = tmp_path / "card.html"
    page.write_text("<!doctype html><html><head><title>card</title></head><body>"
                    + MarkdownIt("commonmark", {"html": True}).enable("table").render(body) + "</body></html>")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert "<title>card</title>" in dom and "PWNED</title>" not in dom
    assert "<script" not in dom and "<img" not in dom and "<svg" not in dom
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom  # shown as text


def test_every_message_is_capped(tmp_path):
    r = tmp_path / "long.yaml"
    r.write_text(f"name: long\ninputs: [{{path: {'p' * 100_000}}}]\nstages: [filter]\n")
    res = _invoke("recipe", "validate", r)
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "ppppp" in res.output
    assert re.fullmatch(r"Error: .{1950,1960}\.\.\. \(\d{5} more characters\)\n", res.output), res.output[-80:]
    assert len(res.output) <= len("Error: ") + 2000 + 1
