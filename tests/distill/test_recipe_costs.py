"""``thresher run --estimate`` and a recipe's ``prices:``/``max_cost:`` against a counting server."""

from __future__ import annotations

import json
from collections import Counter

import yaml

from .conftest import write_prompts
from .test_costs import _prompts, server, smol_count  # noqa: F401 - fixtures


def _recipe(tmp_path, srv, prompts, max_cost):
    data = {"name": "costs", "seed": 0, "holdout": 0, "inputs": [{"path": str(prompts)}],
            "stages": [{"generate": {"backend": "openai", "base_url": srv.base_url, "teacher": "smollm2",
                                     "max_tokens": 16, "prices": {"input": 1000, "output": 2000},
                                     "max_cost": max_cost}}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_run_estimate_budget_and_summary_totals(cli_run, tmp_path, server):  # noqa: F811
    texts = _prompts(20)
    prompts = write_prompts(tmp_path / "p.jsonl", texts)
    srv = server()
    out = tmp_path / "run"
    est = cli_run("run", str(_recipe(tmp_path, srv, prompts, 0.5)), "--out", str(out), "--estimate")
    assert est.exit_code == 0, est.output
    assert srv.log == [] and "01-generate:" in est.output and "20 requests" in est.output
    assert "(tokenizer of smollm2)" in est.output and "at USD 1000 in / 2000 out per 1M tokens (override" in est.output
    res = cli_run("run", str(_recipe(tmp_path, srv, prompts, 0.5)), "--out", str(out))
    assert res.exit_code == 1
    assert f"Error: budget USD 0.5 reached after {len(srv.log)} of 20 prompts; rerun with a higher --max-cost " \
           "to continue" in res.output
    res = cli_run("run", str(_recipe(tmp_path, srv, prompts, 5)), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert Counter(srv.questions()) == Counter(texts)
    summary = json.loads((out / "summary.json").read_text())
    spent = sum(e["prompt_tokens"] * 1000 + 12 * 2000 for e in srv.log) / 1e6
    gen = next(s for s in summary["stages"] if s["stage"] == "generate")
    assert gen["cost_usd"] == summary["cost_usd"] and abs(summary["cost_usd"] - spent) < 1e-6
    assert summary["prompt_tokens"] == sum(e["prompt_tokens"] for e in srv.log)
    assert "- API cost: USD" in res.output
    from thresher.report.report import build, render_markdown
    from thresher.report.run import load_run

    run = load_run(out)
    text = render_markdown(run, build(run), out)
    assert f"| 01-generate API usage | {summary['prompt_tokens']} prompt + " in text
    assert "| API cost of the run | USD " in text
