"""Preference data from what curation already scored: ``thresher export RUN --format dpo|kto``.

A score stage ranks the ``n`` samples the generate stage drew for each prompt (rows sharing a
``parent_id``). From them, one pair per prompt:

- ``best-worst`` (default): chosen = the highest ``score_<NAME>``, rejected = the lowest, kept
  when ``chosen - rejected >= min_margin`` (> 0: a tie is no preference);
- ``verified``: chosen = a sample whose verifier column (``score_<VERIFIED>``, 1.0 = pass) passed,
  rejected = one that failed; among several, the best and the worst by the ranking score when
  one is given. The margin applies to the ranking score when there is one.

Output rows are TRL's conversational preference format: ``prompt`` (the messages before the
answer), ``chosen`` and ``rejected`` (one assistant message each), plus ``prompt_id``,
``score_chosen``, ``score_rejected`` and ``category``. ``kto`` writes the same choices unpaired,
TRL's ``prompt`` / ``completion`` / ``label`` (True for chosen, False for rejected).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

from thresher.errors import ThresherError
from thresher.io import parts

#: a preference-pair format
PairKind = Literal["dpo", "kto"]
KINDS: tuple[str, ...] = get_args(PairKind)
DATA_FILE = "data/train-00000-of-00001.parquet"


@dataclass(frozen=True)
class PairOptions:
    """How pairs are chosen (see the module docstring)."""

    kind: PairKind = "dpo"
    """dpo (prompt/chosen/rejected) or kto (prompt/completion/label)."""
    score: str | None = None
    """Ranking column (score_NAME or NAME); default: the only score column that is not a verifier's."""
    verified: str | None = None
    """Verifier column (1.0 = pass): chosen passed, rejected failed."""
    min_margin: float = 0.0
    """Least score difference between chosen and rejected (best-worst: a pair needs more than a tie)."""

    def describe(self) -> str:
        """One sentence for the dataset card."""
        if self.verified:
            rank = f", the best and the worst by `{self.score}` among them" if self.score else ""
            how = f"chosen is a sample that passed `{self.verified}` and rejected one that failed{rank}"
        else:
            how = f"chosen is the sample with the highest `{self.score}` and rejected the one with the lowest"
        margin = f"; pairs whose score difference is below {self.min_margin:g} are left out" \
            if self.score and (self.min_margin > 0 or not self.verified) else ""
        return f"For each prompt, {how}{margin}."


def _column(df: pl.DataFrame, name: str | None, what: str) -> str | None:
    if name is None:
        return None
    col = name if name.startswith("score_") else f"score_{name}"
    if col not in df.columns:
        have = ", ".join(c for c in df.columns if c.startswith("score_")) or "none"
        raise ThresherError(f"{what}: no column {col} (score columns: {have})")
    return col


def resolve_options(df: pl.DataFrame, opts: PairOptions) -> PairOptions:
    """Options with the column names checked and the ranking column chosen when not given."""
    if opts.kind not in KINDS:
        raise ThresherError(f"format: {opts.kind!r} is not a preference format (expected {', '.join(KINDS)})")
    if "parent_id" not in df.columns:
        raise ThresherError("no parent_id column: pairs need the n samples per prompt of a generate stage")
    verified = _column(df, opts.verified, "--verified")
    score = _column(df, opts.score, "--score")
    if score is None and verified is None:
        scores = [c for c in df.columns if c.startswith("score_")]
        if len(scores) != 1:
            raise ThresherError(f"give --score NAME (score columns: {', '.join(scores) or 'none'})")
        score = scores[0]
    return PairOptions(opts.kind, score, verified, opts.min_margin)


def _answer(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": row["messages"][-1]["content"]}]


def _prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"][:-1]]


def _choose(group: list[dict[str, Any]], opts: PairOptions) -> tuple[dict, dict] | None:
    """(chosen, rejected) of one prompt's samples, or None."""
    score = opts.score
    if opts.verified:
        v = opts.verified
        good = [r for r in group if r.get(v) is not None and r[v] >= 1.0]
        bad = [r for r in group if r.get(v) is not None and r[v] < 1.0]
        if not good or not bad:
            return None
        if score:
            good = sorted((r for r in good if r.get(score) is not None), key=lambda r: -r[score]) or good
            bad = sorted((r for r in bad if r.get(score) is not None), key=lambda r: r[score]) or bad
        chosen, rejected = good[0], bad[0]
        if score and opts.min_margin > 0 and (chosen.get(score) is None or rejected.get(score) is None
                                              or chosen[score] - rejected[score] < opts.min_margin):
            return None
        return chosen, rejected
    ranked = sorted((r for r in group if r.get(score) is not None), key=lambda r: (-r[score], r["id"]))
    if len(ranked) < 2:
        return None
    chosen, rejected = ranked[0], ranked[-1]
    margin = chosen[score] - rejected[score]
    if margin <= 0 or margin < opts.min_margin:
        return None
    return chosen, rejected


def build_pairs(df: pl.DataFrame, opts: PairOptions) -> tuple[pl.DataFrame, dict[str, int]]:
    """The preference rows (DPO or KTO) and counts: prompts, pairs, and prompts without a pair."""
    opts = resolve_options(df, opts)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in df.iter_rows(named=True):
        groups.setdefault(row["parent_id"], []).append(row)
    out: list[dict[str, Any]] = []
    pairs = 0
    for pid, group in groups.items():
        picked = _choose(group, opts)
        if picked is None:
            continue
        chosen, rejected = picked
        pairs += 1
        base = {"prompt_id": pid, "prompt": _prompt(chosen), "category": chosen.get("category")}
        sc = opts.score or opts.verified
        if opts.kind == "dpo":
            out.append({**base, "chosen": _answer(chosen), "rejected": _answer(rejected),
                        "score_chosen": chosen.get(sc), "score_rejected": rejected.get(sc)})
        else:
            out += [{**base, "completion": _answer(r), "label": label, "score": r.get(sc)}
                    for r, label in ((chosen, True), (rejected, False))]
    counts = {"prompts": len(groups), "pairs": pairs, "without_pair": len(groups) - pairs, "rows": len(out)}
    return pl.DataFrame(out) if out else pl.DataFrame(), counts


def _card(source: str, opts: PairOptions, counts: dict[str, int]) -> str:
    import yaml

    meta = {"tags": ["thresher", opts.kind, "preference", "synthetic"],
            "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILE}]}]}
    fmt = ("`prompt`, `chosen`, `rejected` (TRL's conversational preference format)" if opts.kind == "dpo"
           else "`prompt`, `completion`, `label` (TRL's unpaired KTO format)")
    safe = source.replace("`", "'")
    return ("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"
            f"# {opts.kind.upper()} preference data\n\n"
            f"Made with thresher from the scored samples of `{safe}`.\n\n"
            f"## How pairs were chosen\n\n{opts.describe()}\n\n"
            f"Prompts: {counts['prompts']}; pairs: {counts['pairs']}; prompts without a pair (a tie, one sample, "
            f"a margin too small, or no passing and failing sample): {counts['without_pair']}.\n\n"
            f"Columns: {fmt}, with `prompt_id`, `category` and the scores.\n")


def scored_samples(run_dir: Path, opts: PairOptions) -> tuple[pl.DataFrame, str]:
    """The last table of ``run_dir`` holding scored samples (a stage folder's kept.parquet, or a
    file); a kept.parquet is one file or a folder of parts."""
    if run_dir.is_file() or parts.is_dataset(run_dir):
        return parts.read(run_dir), run_dir.name
    candidates = sorted((p for p in run_dir.glob("*/kept.parquet") if parts.exists(p)), reverse=True)
    if parts.exists(run_dir / "kept.parquet"):
        candidates.insert(0, run_dir / "kept.parquet")
    for path in candidates:
        cols = parts.schema(path)
        wanted = [c for c in (opts.score, opts.verified) if c]
        wanted = [c if c.startswith("score_") else f"score_{c}" for c in wanted]
        if "parent_id" in cols and any(c.startswith("score_") for c in cols) and all(c in cols for c in wanted):
            return parts.read(path), f"{run_dir.name}/{path.parent.name}" if path.parent != run_dir \
                else run_dir.name
    raise ThresherError(f"{run_dir}: no scored samples (a score stage after generate with n > 1) to build pairs from")


def export_pairs(run_dir: str | os.PathLike, out: str | os.PathLike, opts: PairOptions) -> dict[str, Any]:
    """Write ``out`` (README.md + data/train Parquet) with the preference rows of ``run_dir``."""
    from thresher.io.atomic import atomic_path

    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.exists():
        raise ThresherError(f"{run_dir}: run folder not found")
    if out.exists() and not (out / "README.md").is_file():
        raise ThresherError(f"{out}: exists and is not an exported dataset folder; choose another --to")
    df, source = scored_samples(run_dir, opts)
    rows, counts = build_pairs(df, opts)
    if rows.height == 0:
        raise ThresherError(f"{run_dir}: no pair found among {counts['prompts']} prompts (all ties, single samples "
                            "or below --min-margin)")
    opts = resolve_options(df, opts)
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "data").mkdir(parents=True)
        rows.write_parquet(tmp / DATA_FILE)
        (tmp / "README.md").write_text(_card(source, opts, counts), encoding="utf-8")
    return {"out": str(out), **counts}
