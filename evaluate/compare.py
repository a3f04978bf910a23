"""Answer, judge and compare: the body of the eval stage (see :mod:`thresher.evaluate.stage`)."""

from __future__ import annotations

import itertools
import math
from typing import Any

from thresher.evaluate import stats as S
from thresher.evaluate.answers import aligned_k, answers, model_path
from thresher.evaluate.judges import Judge
from thresher.evaluate.verifiers import Item

ALL = "all"


def _model_values(spec, path: str, prompts, prompts_path, refs, tests, entry, judges: list[Judge],
                  config, stage, force: bool) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per-prompt values of every per-model judge, and the model's answers."""
    from thresher.evaluate import metrics as M
    answers_df, budget = answers(f"{spec.name}-{_weights_tag(spec.model, path)}", path, prompts_path, config,
                                  stage, force)
    k = config.samples
    texts_k, finish_k, tokens_k = aligned_k(prompts, answers_df, k)
    texts, finish, tokens = [t[0] for t in texts_k], [f[0] for f in finish_k], [n[0] for n in tokens_k]
    prompt_texts = [m[-1]["content"] if m else "" for m in prompts["messages"].to_list()]
    items = [Item(reference=r, finish_reason=f, tests=t, entry_point=e, prompt=p)
             for r, fs, t, e, p in zip(refs, finish_k, tests, entry, prompt_texts) for f in fs]
    flat = [a for answers in texts_k for a in answers]
    values: dict[str, list[float]] = {}
    verifiers = [j for j in judges if j.is_verifier]
    per_answer = {j.name: M.verifier_values(j, flat, items, sandbox=config.sandbox,
                                            workers=config.code_workers or None) for j in verifiers}
    for name, vals in per_answer.items():  # avg@k: each prompt's value is the mean over its k answers
        values[name] = [sum(vals[i * k:(i + 1) * k]) / k for i in range(len(texts_k))]
    if len(verifiers) >= 2:  # every verifier passes the same answer, averaged over the k answers
        both = [all(c == 1.0 for c in cells) for cells in zip(*per_answer.values())]
        values[ALL] = [sum(both[i * k:(i + 1) * k]) / k for i in range(len(texts_k))]
    for j in judges:
        if j.kind == "refnll":
            convs = [[*m, {"role": "assistant", "content": r}] for m, r in zip(prompts["messages"].to_list(), refs)]
            values[j.name] = M.reference_nll(path, convs, max_length=int(config.score.get("max_length", 1024)))
        elif j.kind in ("reward", "judge"):
            answers_path = stage.out / f"answers-{spec.name}-{_weights_tag(spec.model, path)}" / "kept.parquet"
            values[j.name] = _reorder(M.score_stage_values(j, answers_path, stage.path(f"score-{j.name}-{spec.name}"),
                                                           force=force, options=dict(config.score)),
                                      answers_df, prompts)
    info = {"texts": texts, "finish": finish, "tokens": tokens, "budget": budget}
    return values, info


def _weights_tag(model: str, path: str) -> str:
    """A short hash of the model's weights (or its train stage's manifest): answers of a
    retrained model at the same path are never mistaken for the previous model's."""
    from thresher.evaluate.models import fingerprint_path
    from thresher.stage import file_fingerprint

    fp = fingerprint_path(model) or fingerprint_path(path)
    return file_fingerprint(fp)[:10] if fp is not None else "hub"


def _reorder(values: list[float], answers_df, prompts) -> list[float]:
    """Per prompt: the mean of its answers' values (NaN where none has one)."""
    key = "parent_id" if "parent_id" in answers_df.columns else "id"
    by: dict[str, list[float]] = {}
    for x, v in zip(answers_df[key].to_list(), values):
        if math.isfinite(v):
            by.setdefault(str(x), []).append(v)
    return [sum(by[p]) / len(by[p]) if by.get(p) else math.nan for p in map(str, prompts["id"].to_list())]


def _mean_ci(values: list[float], config) -> dict[str, float]:
    mean, lo, hi = S.bootstrap_ci(values, resamples=config.resamples, seed=config.seed)
    return {"mean": mean, "low": lo, "high": hi, "n": int(sum(1 for v in values if math.isfinite(v)))}


def _pairs(names: list[str], values: dict[str, dict[str, list[float]]], directions: dict[str, bool],
           config, idx: list[int] | None = None) -> list[dict[str, Any]]:
    out = []
    for a, b in itertools.combinations(names, 2):
        for metric, hib in directions.items():
            if metric not in values[a] or metric not in values[b]:
                continue
            va, vb = values[a][metric], values[b][metric]
            if idx is not None:
                va, vb = [va[i] for i in idx], [vb[i] for i in idx]
            out.append({"a": a, "b": b, "metric": metric, "higher_is_better": hib,
                        **S.compare(va, vb, higher_is_better=hib, resamples=config.resamples, seed=config.seed)})
    return out


def _pairwise(judges: list[Judge], names: list[str], prompts, infos, config) -> list[dict[str, Any]]:
    """The pairwise LLM judge for every pair of models (both orders)."""
    from thresher.evaluate.metrics import pairwise_values
    from thresher.generation import make_text_generator

    out = []
    questions = [m[-1]["content"] if m else "" for m in prompts["messages"].to_list()]
    for j in (j for j in judges if j.kind == "pairwise"):
        backend, _, model = (j.arg or "").partition(":")
        gen = make_text_generator(backend, model or None, temperature=0.0, max_tokens=8)
        for a, b in itertools.combinations(names, 2):
            vals = pairwise_values(gen, questions, infos[a]["texts"], infos[b]["texts"])
            half = [0.5 if math.isfinite(v) else math.nan for v in vals]
            out.append({"a": a, "b": b, "metric": j.name, "higher_is_better": True,
                        **S.compare(vals, half, resamples=config.resamples, seed=config.seed)})
    return out


def _rows(names, prompts, values, infos):
    import polars as pl

    from thresher.schema import conform, content_id

    recs = []
    msgs = prompts["messages"].to_list()
    for name in names:
        for i, pid in enumerate(prompts["id"].to_list()):
            rec = {"id": content_id([{"role": "system", "content": name}, {"role": "user", "content": str(pid)}]),
                   "messages": [*msgs[i], {"role": "assistant", "content": infos[name]["texts"][i]}],
                   "category": prompts["category"][i], "source": prompts["source"][i],
                   "model": name, "prompt_id": str(pid), "finish_reason": infos[name]["finish"][i],
                   "completion_tokens": infos[name]["tokens"][i]}
            for metric, vals in values[name].items():
                rec[f"eval_{metric}"] = None if not math.isfinite(vals[i]) else float(vals[i])
            recs.append(rec)
    return conform(pl.DataFrame(recs, infer_schema_length=None))


def evaluate_models(models, prompts, prompts_path, refs, tests, entry, judges: list[Judge], config, stage,
                    force: bool):
    """Kept rows (one per model and prompt) and the eval summary (see the stage docstring)."""
    names = [m.name for m in models]
    values: dict[str, dict[str, list[float]]] = {}
    infos: dict[str, dict[str, Any]] = {}
    paths: dict[str, str] = {}
    for spec in models:
        paths[spec.name] = model_path(spec, stage, config)
        values[spec.name], infos[spec.name] = _model_values(spec, paths[spec.name], prompts, prompts_path, refs,
                                                            tests, entry, judges, config, stage, force)
    focus = config.focus or ("curated" if "curated" in names else names[-1])
    ordered = [focus, *(n for n in names if n != focus)] if focus in names else names  # pairs: focus first
    directions = {m: True for m in values[names[0]]}
    for j in judges:
        if j.name in directions:
            directions[j.name] = j.higher_is_better
    cats = [c if c is not None else "(none)" for c in prompts["category"].to_list()]
    summary: dict[str, Any] = {
        "prompts": prompts.height,
        "budget": infos[names[0]]["budget"],
        "samples": config.samples,  # k of avg@k (1: one greedy answer)
        "temperature": config.answer_temperature(),
        "judges": [{"name": j.name, "kind": j.kind, "arg": j.arg, "higher_is_better": j.higher_is_better}
                   for j in judges] + ([{"name": ALL, "kind": "all", "arg": None, "higher_is_better": True}]
                                       if ALL in directions else []),
        "target": config.target_metric(),
        "models": {n: {"model": next(m.model for m in models if m.name == n), "path": paths[n],
                       "metrics": {k: _mean_ci(v, config) for k, v in values[n].items()},
                       "mean_tokens": _mean_tokens(infos[n]["tokens"])} for n in names},
        "pairs": _pairs(ordered, values, directions, config) + _pairwise(judges, ordered, prompts, infos, config),
        "categories": {},
    }
    for cat in sorted(set(cats)):
        idx = [i for i, c in enumerate(cats) if c == cat]
        summary["categories"][cat] = {
            "prompts": len(idx),
            "means": {n: {k: _nanmean([v[i] for i in idx]) for k, v in values[n].items()} for n in names},
            "pairs": _pairs(ordered, values, directions, config, idx),
        }
    summary["focus"] = focus
    if any(j.kind == "code" for j in judges):  # which isolation ran the code judge's programs
        from thresher.sandbox import detect

        summary["sandbox"] = detect(config.sandbox).describe()
    from thresher.evaluate.verdict import verdict

    summary["verdict"] = verdict(summary, focus)
    return _rows(names, prompts, values, infos), summary


def _nanmean(vals: list[float]) -> float | None:
    ok = [v for v in vals if math.isfinite(v)]
    return sum(ok) / len(ok) if ok else None


def _mean_tokens(tokens: list[int | None]) -> float | None:
    ok = [t for t in tokens if t is not None]
    return sum(ok) / len(ok) if ok else None
