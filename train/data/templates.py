"""Load the student's tokenizer and its chat template (with a ``--chat-template`` override).

A training row is rendered with the *student's* chat template, so a tokenizer without one is
a user error unless ``--chat-template`` gives one (a Jinja file or a literal Jinja string).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

_PROBE = [
    {"role": "system", "content": "You are a probe."},
    {"role": "user", "content": "Probe question?"},
    {"role": "assistant", "content": "Probe answer."},
]


def load_chat_template(value: str | Path) -> str:
    """The Jinja chat template named by ``value``: a file path, or a literal template string.

    A string containing ``{%`` or ``{{`` is taken as the template itself; anything else must be
    a readable file. Raises :class:`ThresherError` when the file is missing or empty.
    """
    text = str(value)
    if isinstance(value, str) and ("{%" in text or "{{" in text):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise ThresherError(f"--chat-template: file not found: {text}")
    template = path.read_text(encoding="utf-8")
    if not template.strip():
        raise ThresherError(f"--chat-template: file is empty: {text}")
    return template


def locate_base(base: str | Path | None) -> tuple[Path, str | None]:
    """(folder, gguf_file or None) for a base model given as a folder, a .gguf file or a name.

    Raises :class:`ThresherError` ("base model not found: ...") for a missing local path.
    """
    if base is not None:
        path = Path(str(base)).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        if path.is_dir():
            has_hf = any(
                (path / f).exists()
                for f in ("tokenizer.json", "tokenizer_config.json", "config.json")
            )
            ggufs = sorted(path.glob("*.gguf"))
            if not has_hf and len(ggufs) == 1:
                return path, ggufs[0].name
            return path, None
        if path.suffix == ".gguf" or str(base).startswith((".", "/", "~")):
            raise ThresherError(f"base model not found: {base}")
    from thresher.models import resolve_model  # lazy: the core resolves names and caches

    resolved = Path(resolve_model(None if base is None else str(base)))
    if resolved.is_file() and resolved.suffix == ".gguf":
        return resolved.parent, resolved.name
    return resolved, None


def load_tokenizer(
    base: str | Path | None,
    *,
    chat_template: str | Path | None = None,
    require_template: bool = True,
    trust_remote_code: bool = False,
) -> Any:
    """Load the tokenizer of ``base`` (folder, ``.gguf`` file, or a name ``resolve_model`` knows).

    ``chat_template`` (a file or a literal Jinja string) replaces the tokenizer's own template.
    With ``require_template`` (default) the template must exist and render a probe
    conversation, else :class:`ThresherError`. A missing pad token is set to the EOS token.
    The folder's own tokenizer code (``auto_map``) runs only with ``trust_remote_code``.
    """
    from thresher.models import load_tokenizer as _load

    template = load_chat_template(chat_template) if chat_template is not None else None
    folder, gguf_file = locate_base(base)
    try:
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        tok = _load(folder, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThresherError(f"cannot load a tokenizer from {base}: {first}") from None
    if template is not None:
        tok.chat_template = template
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if require_template:
        if chat_template is not None:  # a broken --chat-template is the template's fault, not the model's
            what = "--chat-template " + ("(the given string)" if template == str(chat_template) else str(chat_template))
            require_chat_template(tok, name=what, label=what)
        else:
            require_chat_template(tok, name=str(base) if base is not None else "the default model")
    return tok


def require_chat_template(tokenizer: Any, *, name: str = "the base model", label: str | None = None) -> None:
    """Raise :class:`ThresherError` unless ``tokenizer`` has a chat template that renders.

    The probe is a system + user + assistant conversation (user + assistant when the template
    rejects system messages); the rendering must contain the assistant's text. ``label`` names
    the template in messages (default: "the chat template of NAME").
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ThresherError(
            f"{name} has no chat template; pass --chat-template FILE (a Jinja chat template)"
        )
    last_error: Exception | None = None
    for probe in (_PROBE, _PROBE[1:]):
        try:
            text = tokenizer.apply_chat_template(probe, tokenize=False)
        except ThresherError:
            raise  # already one line (a template that blows up, see thresher.models)
        except Exception as exc:  # noqa: BLE001 - jinja2 errors, raise_exception() in the template
            last_error = exc
            continue
        if "Probe answer." not in text:
            raise ThresherError(f"{label or 'the chat template of ' + name} drops the assistant's text")
        return
    msg = (
        str(last_error).strip().splitlines()[0]
        if last_error and str(last_error).strip()
        else "error"
    )
    raise ThresherError(f"{label or 'the chat template of ' + name} fails to render a conversation: {msg}")
