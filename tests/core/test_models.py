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
