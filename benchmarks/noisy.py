"""Benchmark: cleaning a noisy instruction set (thresher's filter-noisy recipe vs the peers).

The set: real human question/answer pairs that ship offline (the ``chatterbot-corpus``
package, English; one answer per distinct question), plus about 30% planted bad rows, made
by this script's own generators, one kind each:

refusal, echo, mismatch (an answer to a different question), truncated, markup (HTML,
HTTP error pages, cookie/subscribe/login notices, template placeholders), near_dup (the
question again with a prefix, a suffix or a typo), loop, wrong_language (real answers of the
corpus's other languages), junk and flipped (yes <-> no, a changed number).

Template-based kinds draw from two disjoint template sets: ``dev`` (the phrases looked at
while writing and tuning the rules) and ``eval`` (written separately and never used to tune;
the default). ``--split dev`` shows the tuning view.

Contenders, side by side in one run: thresher's ``recipes/filter-noisy.yaml`` (its stages on
this set, ``report`` left out); datatrove's heuristic filters (Gopher quality and repetition,
C4, FineWeb) tuned to short answers (their defaults drop most good short answers); a
length-only cut (the shortest answers) and random dropping, both at thresher's drop rate.

Reported per contender: recall per kind, the share of good rows kept, precision, F1 and wall
time; printed as a table and written to ``benchmarks/results/noisy.json``. Near-duplicate
pairs count as one unit: the pair is caught when one copy is dropped and the other kept
(whichever copy survives).

Usage: ``python benchmarks/noisy.py`` (a few minutes on 2 cores), ``--split dev``,
``--write-set FILE`` to save the planted set as JSONL, ``--json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KINDS = ("refusal", "echo", "mismatch", "truncated", "markup", "near_dup", "loop",
         "wrong_language", "junk", "flipped")
ORDINARY = tuple(k for k in KINDS if k != "flipped")

# ---------------------------------------------------------------- templates (dev | eval)

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "refusal": {
        "dev": [
            "I'm sorry, but I can't help with that.",
            "As an AI language model, I don't have personal opinions on this.",
            "I'm afraid I can't answer that.",
            "I'm not comfortable answering that question.",
            "Sorry, I cannot provide that information.",
            "As an AI, I cannot browse the internet, so I can't tell you.",
            "I must decline to answer this request.",
            "Unfortunately, I am unable to assist with that.",
        ],
        "eval": [
            "I apologize, but I won't be able to help you with this one.",
            "That's not something I'm able to discuss.",
            "I'd rather not comment on that.",
            "As a large language model trained by a research lab, I have no way of knowing that.",
            "Unfortunately that is beyond what I can help with.",
            "I'm just an AI assistant, so I do not have feelings or opinions about this.",
            "Regrettably, I cannot offer an answer to that question.",
            "My apologies, but I can't provide a response to that.",
            "I am not able to share that.",
            "I'm really sorry, but responding to this isn't something I can do.",
            "I'm afraid that's not a question I can answer.",
            "As an AI model I cannot give you a reliable answer here.",
        ],
    },
    "echo": {
        "dev": ["{q}", "You asked: {q}", "{q} Good question!", "{ql}", "{q} {q}"],
        "eval": ["Hmm, {q}", "So you want to know: {qn}?", "{qn}... that is the question.",
                 "Let me repeat your question: {q}", "Well, {qln}.", "{qn}? Interesting."],
    },
    "markup": {
        "dev": [
            "<p>{a}</p>", "403 Forbidden\n\nnginx", "{a} This website uses cookies to improve your experience. "
            "Accept all cookies", "Hi {{{{name}}}}, {a}", '<div class="answer">{a}</div>',
            "Please log in to continue reading.",
        ],
        "eval": [
            "<span>{a}</span><br/>", "502 Bad Gateway\ncloudflare", "{a}\n\nSubscribe to our newsletter for more tips!",
            "Dear [Your Name], {a}", "404 Not Found - The requested URL was not found on this server.",
            "{a}&nbsp;Read the full article.", "Sign in to view this answer.",
            "{a}\n\nWe use cookies to personalise content. Manage cookie preferences.",
            "<html><body><h1>Error</h1><p>Service Unavailable</p></body></html>", "Hello ${{user}}, {a}",
            "Access denied. You don't have permission to access this resource.",
        ],
    },
    "near_dup": {
        "dev": ["Quick question: {q}", "Hi! {q}", "{q} Thanks!", "{q} Please answer.", "typo"],
        "eval": ["Hey there, {q}", "Can you help? {q}", "{q} Thank you.", "{q} Any ideas?", "typo"],
    },
    "junk": {
        "dev": ["asdkjh qwe zxcvb", "!!!???###", "😀😀😀😀😀😀", "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=", "null",
                "lorem ipsum dolor sit amet consectetur"],
        "eval": ["jjjjjjjjjjjjjjjj", "%%%% $$$$ ^^^^", "qwertyuiop asdfghjkl", "undefined", "[object Object]",
                 "🙂🙂🙂 🙂🙂", "xkcd zzzz pqrs tuvw", "0x3F 0xA2 0x19 0xFF 0x00"],
    },
    "loop": {
        "dev": ["rep", "words"],
        "eval": ["rep", "tail"],
    },
}


# ---------------------------------------------------------------- the data


def good_rows() -> list[dict]:
    """Real chatterbot English Q/A pairs, one answer per distinct question."""
    from thresher.recipe.inputs_step import read_chatterbot

    seen: set[str] = set()
    out = []
    for rec in read_chatterbot("english", responses=True):
        m = rec["messages"]
        for k in range(0, len(m) - 1, 2):
            q, a = m[k]["content"].strip(), m[k + 1]["content"].strip()
            key = " ".join(re.findall(r"\w+", q.lower()))
            if not q or not a or key in seen:
                continue
            seen.add(key)
            out.append({"q": q, "a": a, "category": rec["category"]})
    return out


def foreign_answers() -> list[str]:
    """Real answers of the corpus's other languages (at least 20 letters)."""
    from thresher.recipe.inputs_step import read_chatterbot

    out = []
    for lang in ("spanish", "german", "french", "italian", "portuguese", "dutch", "turkish", "indonesian"):
        for rec in read_chatterbot(lang, responses=True):
            a = rec["messages"][1]["content"]
            if sum(c.isalpha() for c in a) >= 20:
                out.append(a)
    return out


def _typo(q: str, rng: random.Random) -> str:
    idx = [i for i in range(len(q) - 1) if q[i].isalpha() and q[i + 1].isalpha()]
    if not idx:
        return q + "?"
    i = rng.choice(idx)
    op = rng.randrange(3)
    if op == 0:
        return q[:i] + q[i + 1] + q[i] + q[i + 2:]
    if op == 1:
        return q[:i] + q[i + 1:]
    return q[:i] + q[i] + q[i:]


def _truncate(a: str, rng: random.Random) -> str | None:
    """``a`` cut mid-sentence: a complete answer (ending with . ! ? or a code fence) loses its
    last 20-70% of words; a cut that happens to end a sentence is not a truncation."""
    words = a.split(" ")
    if len(words) < 4 or not a.rstrip().endswith((".", "!", "?", "```")):
        return None
    k = rng.randint(max(2, int(len(words) * 0.3)), max(2, int(len(words) * 0.8)))
    k = min(k, len(words) - 1)
    cut = " ".join(words[:k])
    if cut.rstrip("\"'”’)").endswith((".", "!", "?")):
        return None
    return cut


def _flip(a: str, rng: random.Random) -> str | None:
    swaps = [(r"\b[Yy]es\b", "No"), (r"\b[Nn]o\b", "Yes"), (r"\bis not\b", "is"), (r"\bisn't\b", "is"),
             (r"\bcan't\b", "can"), (r"\btrue\b", "false"), (r"\bfalse\b", "true")]
    digits = re.findall(r"\d+", a)
    if digits:
        d = rng.choice(digits)
        return a.replace(d, str(int(d) + rng.choice([1, 2, 3, 10])), 1)
    for pat, rep in swaps:
        if re.search(pat, a):
            return re.sub(pat, rep, a, count=1)
    return None


def _loop(a: str, style: str, rng: random.Random) -> str:
    if style == "rep":
        return " ".join([a] * rng.randint(4, 7))
    words = a.split()
    if style == "words":
        return " ".join(words[:3] + [words[-1] if words else "the"] * 12)
    return a + " " + " ".join(["and so on"] * 8)


def make_bad(kind: str, row: dict, pool: list[dict], foreign: list[str], split: str,
             rng: random.Random) -> dict | None:
    """One planted bad row of ``kind`` made from ``row`` (None when the row does not suit)."""
    q, a = row["q"], row["a"]
    t = TEMPLATES.get(kind, {}).get(split, [])
    qn = q.rstrip("?.! ")
    if kind == "refusal":
        a = rng.choice(t)
    elif kind == "echo":
        a = rng.choice(t).format(q=q, ql=q.lower(), qn=qn, qln=qn.lower())
    elif kind == "mismatch":
        other = rng.choice(pool)
        if other["q"] == q or other["a"] == a:
            return None
        a = other["a"]
    elif kind == "truncated":
        a = _truncate(a, rng)
    elif kind == "markup":
        a = rng.choice(t).format(a=a)
    elif kind == "near_dup":
        tpl = rng.choice(t)
        q = _typo(q, rng) if tpl == "typo" else tpl.format(q=q)
    elif kind == "loop":
        a = _loop(a, rng.choice(t), rng)
    elif kind == "wrong_language":
        a = rng.choice(foreign)
    elif kind == "junk":
        a = rng.choice(t)
    elif kind == "flipped":
        a = _flip(a, rng)
    if a is None:
        return None
    return {"q": q, "a": a, "category": row["category"], "kind": kind}


def build(seed: int = 0, split: str = "eval", noise: float = 0.3) -> list[dict]:
    """The planted set, in random order: ``noise`` share of bad rows, the rest good.

    A bad row is made from a real row whose good version then leaves the set (so no bad row
    shares its question with a good one, as in a real noisy set), except a near-duplicate,
    which is planted beside its original.
    """
    rng = random.Random(seed)
    pool = good_rows()
    rng.shuffle(pool)
    foreign = foreign_answers()
    # k rows per kind: good = pool - (kinds - 1) k (near-duplicates keep their source), bad = kinds x k
    per_kind = round(noise * len(pool) / (len(KINDS) - noise))
    used: set[int] = set()
    bad_rows: list[dict] = []
    for kind in KINDS:
        made = 0
        for i, row in enumerate(pool):
            if made >= per_kind:
                break
            if i in used:
                continue
            bad = make_bad(kind, row, pool, foreign, split, rng)
            if bad is None:
                continue
            if kind == "near_dup":
                bad["pair"] = row["q"]
            used.add(i)
            bad_rows.append(bad)
            made += 1
    keep_source = {r["pair"] for r in bad_rows if r["kind"] == "near_dup"}
    good = [dict(r, kind="good") for i, r in enumerate(pool) if i not in used or r["q"] in keep_source]
    rows = good + bad_rows
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["id"] = f"r{i:05d}"
    return rows


def to_records(rows: list[dict]) -> list[dict]:
    """Rows as thresher records (messages, category, source); the kind stays out."""
    return [{"id": r["id"], "messages": [{"role": "user", "content": r["q"]},
                                         {"role": "assistant", "content": r["a"]}],
             "category": r["category"], "source": "noisy-benchmark"} for r in rows]


# ---------------------------------------------------------------- contenders


def run_thresher(rows: list[dict], recipe: Path, work: Path, cache: Path | None = None) -> tuple[set[str], dict]:
    """The recipe's stages (report left out) on the set: ids dropped, and seconds per stage."""
    import yaml

    from thresher.recipe.runner import run_recipe
    from thresher.recipe.spec import parse_recipe

    data = work / "noisy.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in to_records(rows)), encoding="utf-8")
    spec = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    spec["inputs"] = [{"path": str(data)}]
    spec["stages"] = [s for s in spec["stages"] if "report" not in s]
    for stage in spec["stages"]:  # a fresh score cache: the wall time includes the scoring
        if "score" in stage:
            stage["score"] = dict(stage["score"] or {}, cache_dir=str(cache or work / "score-cache"))
    run_dir = work / "run"
    run_recipe(parse_recipe(spec), run_dir, force=True, echo=lambda _s: None)
    import polars as pl

    from thresher.recipe.runner import _read_json

    folders = sorted(p for p in run_dir.iterdir() if p.is_dir() and re.match(r"\d\d-", p.name))
    seconds = {p.name: _read_json(p / "stats.json").get("seconds") for p in folders}
    final = pl.read_parquet(folders[-1] / "kept.parquet")
    kept = set(final["id"].to_list())
    return {r["id"] for r in rows} - kept, seconds


def datatrove_filters():
    """datatrove's heuristic chain, tuned to short answers (see the README's table)."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [
        # short answers: one word is a document; a one-word answer has no stop word; code has
        # symbols; the top-n-gram share of a 5-word answer is large by construction
        GopherQualityFilter(min_doc_words=1, min_stop_words=0, min_avg_word_length=1, max_avg_word_length=15,
                            max_symbol_word_ratio=0.3, max_non_alpha_words_ratio=0.4),
        GopherRepetitionFilter(dup_line_frac=0.3, dup_para_frac=0.3, dup_line_char_frac=0.3,
                               dup_para_char_frac=0.3, top_n_grams=(),
                               dup_n_grams=((5, 0.3), (6, 0.3), (7, 0.3), (8, 0.3), (9, 0.3), (10, 0.3))),
        C4QualityFilter(split_paragraph=True, filter_no_terminal_punct=False, min_num_sentences=-1,
                        min_words_per_line=-1, filter_curly_bracket=False),
        FineWebQualityFilter(line_punct_thr=0.0, short_line_thr=1.1, char_duplicates_ratio=0.3,
                             new_line_ratio=1.1),
    ]


def run_datatrove(rows: list[dict]) -> set[str] | str:
    """ids datatrove's tuned chain drops (or why it could not run)."""
    try:
        from datatrove.data import Document

        filters = datatrove_filters()
    except ImportError as e:
        return f"datatrove not installed ({e}); pip install '.[bench]'"
    dropped = set()
    for r in rows:
        doc = Document(text=r["a"], id=r["id"])
        for f in filters:
            ok = f.filter(doc)
            if not (ok[0] if isinstance(ok, tuple) else ok):
                dropped.add(r["id"])
                break
    return dropped


def run_length(rows: list[dict], n: int) -> set[str]:
    """The ``n`` shortest answers."""
    return {r["id"] for r in sorted(rows, key=lambda r: (len(r["a"]), r["id"]))[:n]}


def run_random(rows: list[dict], n: int, seed: int) -> set[str]:
    return {r["id"] for r in random.Random(seed).sample(rows, n)}


# ---------------------------------------------------------------- scoring


def pair_units(rows: list[dict], dropped: set[str]) -> set[str]:
    """``dropped`` with each near-duplicate pair as one unit: when the original went and the
    near-duplicate stayed, the near-duplicate counts as the dropped copy (whichever survives)."""
    dropped = set(dropped)
    by_q = {r["q"]: r for r in rows if r["kind"] == "good"}
    for r in rows:
        if r["kind"] == "near_dup" and r.get("pair") in by_q:
            orig = by_q[r["pair"]]
            if orig["id"] in dropped and r["id"] not in dropped:
                dropped = (dropped - {orig["id"]}) | {r["id"]}
    return dropped


def score(rows: list[dict], dropped: set[str]) -> dict:
    """Recall per kind, good rows kept, precision and F1 of a dropped-id set."""
    dropped = pair_units(rows, dropped)
    out: dict = {"recall": {}}
    for kind in KINDS:
        ids = [r["id"] for r in rows if r["kind"] == kind]
        out["recall"][kind] = sum(i in dropped for i in ids) / len(ids) if ids else None
    good = [r["id"] for r in rows if r["kind"] == "good"]
    bad = [r["id"] for r in rows if r["kind"] != "good"]
    ordinary = [r["id"] for r in rows if r["kind"] in ORDINARY]
    tp = sum(i in dropped for i in bad)
    out["good_kept"] = sum(i not in dropped for i in good) / len(good)
    out["precision"] = tp / len(dropped) if dropped else 0.0
    out["recall_all"] = tp / max(len(bad), 1)
    out["recall_ordinary"] = sum(i in dropped for i in ordinary) / max(len(ordinary), 1)
    present = [out["recall"][k] for k in ORDINARY if out["recall"][k] is not None]
    out["macro_recall_ordinary"] = sum(present) / len(present) if present else None
    p, r = out["precision"], out["recall_all"]
    out["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    out["dropped"] = len(dropped)
    return out


def table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label, get):
        vals = []
        for n in names:
            v = get(results[n])
            vals.append("n/a" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append(f"| {label} | " + " | ".join(vals) + " |")

    for k in KINDS:
        row(f"recall: {k}", lambda r, k=k: r["recall"][k])
    for key in ("macro_recall_ordinary", "good_kept", "precision", "f1", "dropped", "seconds"):
        row(key, lambda r, key=key: r.get(key))
    return "\n".join(lines)


def wrong_examples(rows: list[dict], dropped: set[str], limit: int = 3) -> dict[str, list]:
    """Up to ``limit`` missed rows per kind and good rows dropped (near-duplicate pairs as units)."""
    dropped = pair_units(rows, dropped)
    out: dict[str, list] = {}
    for r in rows:
        missed = r["kind"] != "good" and r["id"] not in dropped
        lost = r["kind"] == "good" and r["id"] in dropped
        if missed or lost:
            key = "good (dropped)" if lost else r["kind"]
            if len(out.setdefault(key, [])) < limit:
                out[key].append({"q": r["q"][:100], "a": r["a"][:160]})
    return out


def main(argv: list[str] | None = None) -> None:
    import tempfile

    from _common import machine, print_json, record

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("eval", "dev"), default="eval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--recipe", type=Path, default=Path("recipes/filter-noisy.yaml"))
    ap.add_argument("--write-set", type=Path, help="also save the planted set (JSONL with a kind column)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/noisy.json"))
    ap.add_argument("--score-cache", type=Path, help="reuse scores from this folder (default: a fresh one, "
                    "so the wall time includes the scoring)")
    ap.add_argument("--limit", type=int, help="only the first N rows (a quick smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = build(args.seed, args.split, args.noise)[: args.limit]
    if args.write_set:
        recs = [dict(rec, kind=r["kind"]) for rec, r in zip(to_records(rows), rows)]
        args.write_set.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in recs), encoding="utf-8")
    results: dict[str, dict] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        dropped, seconds = run_thresher(rows, args.recipe, Path(tmp), args.score_cache)
        results["thresher"] = dict(score(rows, dropped), seconds=time.perf_counter() - t, stages=seconds)
        misses = wrong_examples(rows, dropped)
    t = time.perf_counter()
    dt = run_datatrove(rows)
    if isinstance(dt, str):
        notes.append(dt)
    else:
        results["datatrove (tuned)"] = dict(score(rows, dt), seconds=time.perf_counter() - t)
    n = len(dropped)
    t = time.perf_counter()
    results["length cut"] = dict(score(rows, run_length(rows, n)), seconds=time.perf_counter() - t)
    results["random"] = dict(score(rows, run_random(rows, n, args.seed)), seconds=0.0)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("good", *KINDS)}
    text = (f"noisy benchmark: {len(rows)} rows ({kinds['good']} good), split {args.split}, seed {args.seed}; "
            f"{machine()}\n\n{table(results)}\n\nthresher seconds per stage: {results['thresher']['stages']}")
    print(text, file=sys.stderr if args.json else sys.stdout)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"split": args.split, "seed": args.seed, "rows": kinds, "machine": machine(),
                                    "results": results, "thresher_wrong": misses}, indent=1) + "\n")
    if args.json:
        recs = []
        for name, res in results.items():
            for metric in ("good_kept", "precision", "f1", "macro_recall_ordinary", "seconds"):
                recs.append(record(f"noisy/{args.split}", name, metric, res[metric], "", name != "thresher"))
        print_json(recs)


if __name__ == "__main__":
    main()
