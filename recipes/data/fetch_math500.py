"""Write ``math500.jsonl``: MATH-500 (HuggingFaceH4/MATH-500, MIT) as prompt rows with their
reference answers, the held-out set of ``recipes/reasoning-gpu.yaml``. Needs network access.

    python recipes/data/fetch_math500.py          # writes recipes/data/math500.jsonl

The hub set names its columns ``problem``/``answer``/``subject``; thresher reads a ``prompt``
and a ``reference`` column, so they are renamed here (``category`` is the subject).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    import datasets

    ds = datasets.load_dataset("HuggingFaceH4/MATH-500", split="test")
    rows = [{"id": r["unique_id"], "category": r["subject"],
             "prompt": r["problem"] + "\n\nPut your final answer within \\boxed{}.",
             "reference": r["answer"]} for r in ds]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("math500.jsonl"))
