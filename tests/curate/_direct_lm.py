"""The reference computation the scorer tests compare with: a tiny model and its tokenizer
loaded directly, the conversation split into prompt and answer token ids."""

from __future__ import annotations


class DirectLM:
    """``model_dir``'s model and tokenizer, and ``conv`` (its last turn the answer) as ids."""

    def __init__(self, model_dir, conv):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.lm = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        p = self.tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True)
        full = self.tok.apply_chat_template(conv, tokenize=False)
        self.p_ids = self.tok(p, add_special_tokens=False)["input_ids"]
        self.r_ids = self.tok(full[len(p):].rstrip(), add_special_tokens=False)["input_ids"]

    def nll(self, prefix: list[int]) -> float:
        """Mean token NLL of the answer after ``prefix``."""
        ids = self.torch.tensor([prefix + self.r_ids])
        with self.torch.no_grad():
            logits = self.lm(ids).logits[0, len(prefix) - 1:-1]
        return float(self.torch.nn.functional.cross_entropy(logits, ids[0, len(prefix):]))

    def last_logp(self, prefix: list[int]) -> float:
        """log p of the answer's last token (the end of turn) after ``prefix`` and the answer."""
        ids = self.torch.tensor([prefix + self.r_ids])
        with self.torch.no_grad():
            logits = self.lm(ids).logits[0, -2]
        return float(self.torch.log_softmax(logits, -1)[ids[0, -1]])
