"""thresher.train.data: conversations to tokens, loss masks, mask lint and packing.

Public API (stable; the trainer imports only these names)::

    from thresher.train.data import (
        load_tokenizer, load_chat_template, require_chat_template, locate_base,  # templates.py
        Example, LintIssue, encode_conversation, generation_mask, end_of_turn_ids,  # masks.py
        renders_reasoning, template_turns, with_reasoning,            # masks.py: reasoning traces
        LintReport, lint_rows, render_token_view, FAILURE_KINDS, LENGTH_KINDS,  # lint.py
        pack_examples, collate, packing_stats, padding_fraction,      # packing.py
        check_attn_implementation,
    )

Heavy imports (torch, transformers) happen inside functions, so importing this package is
cheap. See ``train/README-internal.md`` for how the trainer side uses it.
"""

from thresher.tokens import end_of_turn_ids  # the one copy, re-exported
from thresher.train.data.lint import (
    FAILURE_KINDS,
    LENGTH_KINDS,
    LINT_KINDS,
    LintReport,
    lint_rows,
    render_token_view,
)
from thresher.train.data.masks import (
    IGNORE_INDEX,
    Example,
    LintIssue,
    encode_conversation,
    generation_mask,
    renders_reasoning,
    template_turns,
    with_reasoning,
)
from thresher.train.data.packing import (
    PACKING_ATTN,
    check_attn_implementation,
    collate,
    pack_examples,
    packing_stats,
    padding_fraction,
)
from thresher.train.data.templates import (
    load_chat_template,
    load_tokenizer,
    locate_base,
    require_chat_template,
)

__all__ = [
    "FAILURE_KINDS",
    "IGNORE_INDEX",
    "LENGTH_KINDS",
    "LINT_KINDS",
    "PACKING_ATTN",
    "Example",
    "LintIssue",
    "LintReport",
    "check_attn_implementation",
    "collate",
    "encode_conversation",
    "end_of_turn_ids",
    "generation_mask",
    "lint_rows",
    "load_chat_template",
    "load_tokenizer",
    "locate_base",
    "pack_examples",
    "packing_stats",
    "padding_fraction",
    "render_token_view",
    "renders_reasoning",
    "require_chat_template",
    "template_turns",
    "with_reasoning",
]
