"""Per-prompt metric values: verifiers over answers, reference NLL, reward model, LLM judge
(pointwise through the curate score code, pairwise here).

Every function returns one float per prompt (NaN where a prompt has no value, e.g. a judge
answer that could not be read), in the held-out prompts' order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from thresher.evaluate.judges import Judge
from thresher.evaluate.verifiers import Item


def verifier_values(judge: Judge, answers: Sequence[str], items: Sequence[Item], *, sandbox: str | None = None,
                    workers: int | None = None) -> list[float]:
    """The verifier's 1/0 for each (answer, item); the ``code`` judge runs its programs in
    ``workers`` parallel sandboxes (``sandbox``: a container command, see thresher.sandbox)."""
    from thresher.evaluate.batch import verify_all

    return verify_all(judge.verifier(), answers, items, parallel=judge.kind == "code", workers=workers,
                      sandbox=sandbox)


def reference_nll(model: str, conversations: Sequence[list[dict]], *, max_length: int = 1024,
                  batch_size: int = 8, device: str = "auto", dtype: str = "auto") -> list[float]:
    """Mean token negative log-likelihood of each conversation's final (reference) assistant
    turn under ``model``, given its prompt turns (the chat template's rendering, end-of-turn
    marker included), in nats. Uses the curate loglik scorer (imported lazily)."""
    from thresher.curate.score.loglik import LoglikScorer

    scorer = LoglikScorer(model, max_length=max_length, batch_size=batch_size, device=device, dtype=dtype)
    try:
        results = scorer.score(list(conversations))
    finally:
        scorer.release()
    return [-r.score if r.score is not None else math.nan for r in results]


PAIRWISE_PROMPT = """You compare two assistant answers to the same user question.
Question:
<question>
{question}
</question>

Answer 1:
<answer1>
{a}
</answer1>

Answer 2:
<answer2>
{b}
</answer2>

Which answer is better: more correct, helpful, complete and to the point? Reply with only
"1", "2" or "tie"."""

_CHOICE = re.compile(r"\b(1|2|tie)\b", re.I)


def read_choice(text: str | None) -> str | None:
    """``"1"``, ``"2"``, ``"tie"`` from a judge's answer (the first one it names), else None."""
    m = _CHOICE.search(text or "")
    return m.group(1).lower() if m else None


def pairwise_values(generate: Any, questions: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[float]:
    """Per prompt: 1 when the judge prefers ``a`` in both orders, 0 when it prefers ``b`` in
    both, 0.5 otherwise (a tie, or the orders disagree: position bias cancels); NaN when an
    answer could not be read. ``generate(conversations) -> list[str]``."""
    def ask(x: Sequence[str], y: Sequence[str]) -> list[str | None]:
        convs = [[{"role": "user", "content": PAIRWISE_PROMPT.format(question=q, a=s, b=t)}]
                 for q, s, t in zip(questions, x, y)]
        return [read_choice(t) for t in generate(convs)]

    first, second = ask(a, b), ask(b, a)
    out = []
    for c1, c2 in zip(first, second):
        if c1 is None or c2 is None:
            out.append(math.nan)
        elif c1 == "1" and c2 == "2":
            out.append(1.0)
        elif c1 == "2" and c2 == "1":
            out.append(0.0)
        else:
            out.append(0.5)
    return out


def score_stage_values(judge: Judge, answers_path, out, *, force: bool = False,
                       options: dict[str, Any] | None = None) -> list[float]:
    """A reward-model or pointwise LLM-judge score per answer, through the score stage
    (its batching, caching and strict judge parsing); NaN where the scorer gave none."""
    from thresher.config import from_dict
    from thresher.io import parts
    from thresher.registry import stage_module

    mod = stage_module("score")
    spec = f"{judge.name}={judge.kind}:{judge.arg}"
    import dataclasses

    fields = {f.name for f in dataclasses.fields(mod.Config)}
    opts = {k: v for k, v in (options or {}).items() if k in fields and k != "scorers"}
    cfg = from_dict(mod.Config, {**opts, "scorers": [spec]}, f"eval.{judge.name}")
    res = mod.run([answers_path], out, cfg, force=force)
    df = parts.read(res.out / "kept.parquet")  # one file or a folder of parts
    col = f"score_{judge.name}"
    return [math.nan if v is None else float(v) for v in df[col].to_list()]
