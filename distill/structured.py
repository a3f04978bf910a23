"""Structured output: ``--response-format json`` or ``--json-schema FILE`` (recipe ``json_schema:``).

The request side depends on the backend: OpenAI-compatible servers get ``response_format``
(``json_object``, or ``json_schema`` with the schema, strict), vLLM gets guided decoding,
and every request carries an instruction with an example object (:meth:`OutputSpec.instruction`);
transformers, which decodes freely, also starts each answer with the object's opening
(:meth:`OutputSpec.prefill`, e.g. ``{"answer":``). Every answer is then checked here: the JSON
is parsed (a surrounding Markdown code fence is allowed) and validated against the schema
with ``jsonschema``; an answer that fails is asked again (``schema_retries``) and finally
dropped with the reason (``drop_code`` ``schema-invalid``). Kept rows hold the parsed object,
as compact JSON text, in the ``structured`` column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?```\s*$", re.S)


@dataclass(frozen=True)
class OutputSpec:
    """What answers must be: any JSON object (``schema`` None) or one matching ``schema``."""

    schema: dict[str, Any] | None
    name: str = "output"

    def response_format(self) -> dict[str, Any]:
        """The OpenAI ``response_format`` request field."""
        if self.schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}

    def instruction(self) -> str:
        """The prompt instruction sent with every request: a skeleton of the object (small models
        copy a literal example far more reliably than they follow a schema, which they echo)."""
        if self.schema is None:
            return "Reply with only a JSON object, no other text."
        return f"Reply with only a JSON object of this form, no other text: {json.dumps(skeleton(self.schema))}"

    def prefill(self) -> str:
        """The start of the answer for backends that decode freely (transformers): the object's
        opening up to its first key, which small models then continue as JSON."""
        shape = skeleton(self.schema) if self.schema is not None else {}
        if isinstance(shape, dict) and shape:
            return "{" + json.dumps(next(iter(shape))) + ":"
        return "{"

    def key(self) -> dict[str, Any]:
        """Part of every row key (answers under another schema are other answers)."""
        return {"response_format": self.response_format()}

    def check(self, text: str) -> tuple[str | None, str | None]:
        """``(compact JSON of the parsed object, None)`` when ``text`` is valid, else ``(None, why)``."""
        m = _FENCE.match(text or "")
        raw = m.group(1) if m else (text or "").strip()
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            return None, f"not JSON ({e.msg} at char {e.pos})"
        if self.schema is None:
            if not isinstance(obj, dict):
                return None, f"not a JSON object (a {type(obj).__name__})"
        else:
            import jsonschema

            err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(obj))
            if err is not None:
                where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                return None, f"schema: {where}: {err.message[:160]}"
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")), None


def skeleton(schema: Any, depth: int = 0) -> Any:
    """A placeholder instance of ``schema`` (required properties, or all when none are required)."""
    if not isinstance(schema, dict) or depth > 4:
        return "..."
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        names = [n for n in schema.get("required") or props if n in props] or list(props)
        return {n: skeleton(props[n], depth + 1) for n in names}
    if kind == "array":
        return [skeleton(schema.get("items"), depth + 1)] if isinstance(schema.get("items"), dict) else []
    return {"integer": 0, "number": 0.0, "boolean": True, "null": None}.get(kind, "...")


def load_spec(response_format: str | None, json_schema: str | None) -> OutputSpec | None:
    """The OutputSpec of the options (None: free text); a bad schema file is a one-line error."""
    if json_schema:
        path = Path(json_schema)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ThresherError(f"{path}: cannot read the JSON schema ({e.strerror})") from None
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as e:
            raise ThresherError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            raise ThresherError(f"{path}: not a valid JSON schema: {e.message[:200]}") from None
        if not isinstance(schema, dict):
            raise ThresherError(f"{path}: a JSON schema must be an object")
        return OutputSpec(schema, name=re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:64] or "output")
    if response_format in (None, "", "text"):
        return None
    if response_format == "json":
        return OutputSpec(None)
    raise ThresherError(f"response_format: must be 'text' or 'json' (got {response_format!r})")
