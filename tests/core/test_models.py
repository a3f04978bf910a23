"""Model resolution: the embedded default, local folders, and clear errors."""

import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.errors import ThresherError
from thresher.models import resolve_model


def test_local_folder_is_returned_as_is(tiny_lm_dir):
    assert resolve_model(str(tiny_lm_dir)) == tiny_lm_dir


def test_missing_and_bad_models_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(ThresherError, match=r"model './nope' not found"):
        resolve_model("./nope")
    with pytest.raises(ThresherError, match="not a model folder"):
        resolve_model(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ThresherError, match=r"model 'nobody/missing-model' is not in the local cache"):
        resolve_model("nobody/missing-model")


@pytest.mark.slow
def test_default_model_is_converted_smollm2(smollm2_dir):
    import json

    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    assert (smollm2_dir / "model.safetensors").exists()
    res = CliRunner().invoke(cli, ["models"])
    assert res.exit_code == 0 and "SmolLM2-135M-Instruct" in res.output
    res = CliRunner().invoke(cli, ["models", "prepare"])
    assert res.exit_code == 0 and res.output.strip() == str(smollm2_dir)


def test_a_chat_template_that_blows_up_is_refused_in_one_line(tmp_path):
    """Issue 22 section 8: a template rendering ``'A' * 10**8`` is refused before the Rust
    tokenizer sees it (it aborted the process), and a tokenizer still pickles."""
    import pickle

    from click.testing import CliRunner

    from tests.train.fetch_tokenizers import ensure
    from thresher.cli.main import cli
    from thresher.models import load_tokenizer

    tok = load_tokenizer(ensure()["smollm2"])
    tok.chat_template = "{{ 'A' * 10**8 }}"
    folder = tmp_path / "tok"
    tok.save_pretrained(folder)
    bomb = load_tokenizer(folder)
    with pytest.raises(ThresherError, match=r"the chat template rendered 100,000,000 characters"):
        bomb.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    with pytest.raises(ThresherError, match=r"the chat template rendered 100,000,000 characters"):
        bomb.apply_chat_template([{"role": "user", "content": "hi"}])
    clone = pickle.loads(pickle.dumps(load_tokenizer(ensure()["smollm2"])))
    assert clone.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).endswith("hi<|im_end|>\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    r = CliRunner().invoke(cli, ["train", "lint-masks", str(rows), "--base", str(folder)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"Error: {folder}: the chat template rendered 100,000,000 characters for one conversation "
        "(at most 16,000,000); refusing the template")
