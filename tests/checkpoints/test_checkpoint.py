import json
import zipfile

import pytest
import torch
from helpers import tiny_model, tiny_norm
from safetensors.torch import load_file, save_file

from dt_playground.atomic import write_json_atomic
from dt_playground.checkpoints.checkpoint import load_checkpoint, save_checkpoint
from dt_playground.checkpoints.layout import list_checkpoints, peek_checkpoint
from dt_playground.checkpoints.uploads import extract_upload
from dt_playground.errors import CheckpointError


def _config(model, env_id="CartPole-v1"):
    norm = tiny_norm(model)
    return {
        "env_id": env_id,
        "algo": "dt",
        "state_mean": norm.state_mean.tolist(),
        "state_std": norm.state_std.tolist(),
        "return_scale": 100.0,
        "dataset": {"return_min": 10.0, "return_max": 500.0},
    }


@pytest.fixture
def ckpt(tmp_path):
    model = tiny_model("CartPole-v1")
    path = save_checkpoint(tmp_path / "ck", model, _config(model))
    return path, model


def test_round_trip_identical_predictions(ckpt):
    path, model = ckpt
    loaded = load_checkpoint(path)
    x = (
        torch.randn(3, 5, 1),
        torch.randn(3, 5, 4),
        torch.nn.functional.one_hot(torch.randint(2, (3, 5)), 2).float(),
        torch.arange(5).repeat(3, 1),
        torch.ones(3, 5),
    )
    torch.testing.assert_close(loaded.model(*x), model(*x), rtol=0, atol=0)
    assert loaded.config["context_len"] == 5 and loaded.config["env_id"] == "CartPole-v1"
    assert loaded.spec.env_id == "CartPole-v1"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def test_overwrite_is_atomic_and_leaves_no_temp(ckpt):
    path, model = ckpt
    save_checkpoint(path, model, _config(model), card={"ok": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]
    assert load_checkpoint(path).card == {"ok": 1}


def test_missing_files(ckpt):
    path, _ = ckpt
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors not found"):
        load_checkpoint(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json not found"):
        load_checkpoint(path)


def test_bad_json(ckpt):
    path, _ = ckpt
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_wrong_tensor_shape(ckpt):
    path, _ = ckpt
    state = load_file(str(path / "model.safetensors"))
    state["embed_state.weight"] = torch.zeros(32, 7)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="embed_state.weight.*shape"):
        load_checkpoint(path)


def test_missing_tensor(ckpt):
    path, _ = ckpt
    state = load_file(str(path / "model.safetensors"))
    del state["predict_action.bias"]
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="predict_action.bias"):
        load_checkpoint(path)


def test_nan_weights(ckpt):
    path, _ = ckpt
    state = load_file(str(path / "model.safetensors"))
    state["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_not_safetensors(ckpt):
    path, _ = ckpt
    import pickle

    (path / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors"):
        load_checkpoint(path)


def test_env_mismatch_and_unknown_env(ckpt):
    path, _ = ckpt
    with pytest.raises(CheckpointError, match="trained on CartPole-v1, not LunarLander-v3"):
        load_checkpoint(path, expect_env="LunarLander-v3")
    cfg = json.loads((path / "config.json").read_text())
    cfg["env_id"] = "Acrobot-v1"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown environment"):
        load_checkpoint(path)
    cfg["env_id"] = "Pendulum-v1"  # known env, but the model doesn't fit its spaces
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not fit Pendulum-v1"):
        load_checkpoint(path)


def test_bad_stats(ckpt):
    path, _ = ckpt
    cfg = json.loads((path / "config.json").read_text())
    cfg["state_std"] = [1.0, 0.0, 1.0, 1.0]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="non-positive"):
        load_checkpoint(path)


def test_zip_upload(ckpt, tmp_path):
    path, model = ckpt
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in path.iterdir():
            zf.write(f, f"ck/{f.name}")
        zf.writestr("../evil.py", "print('no')")
        zf.writestr("ck/weights.pkl", b"\x80\x04junk")
    out = extract_upload(z, tmp_path / "unz")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert not (tmp_path / "evil.py").exists()
    load_checkpoint(out)


def test_upload_that_is_not_a_zip(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"PK-but-not-really")
    with pytest.raises(CheckpointError, match="not a zip"):
        extract_upload(bad, tmp_path / "x")


def test_list_checkpoints(ckpt):
    path, _ = ckpt
    assert list_checkpoints(path.parent) == [path]
    assert list_checkpoints(path.parent, env_id="Pendulum-v1") == []


def test_peek_follows_a_rewritten_config(tmp_path):
    """peek_checkpoint is cached, but never stale: a config rewritten by rename, or a
    return model added beside it, shows at once."""
    folder = tmp_path / "ck"
    folder.mkdir()
    config = {"env_id": "CartPole-v1", "algo": "dt", "context_len": 20}
    write_json_atomic(folder / "config.json", config)
    first = peek_checkpoint(folder)
    assert (first.algo, first.context_len, first.offers_best) == ("dt", 20, False)
    assert peek_checkpoint(folder) == first
    write_json_atomic(folder / "config.json", {**config, "algo": "bc", "context_len": 1})
    assert (peek_checkpoint(folder).algo, peek_checkpoint(folder).context_len) == ("bc", 1)
    write_json_atomic(folder / "config.json", config)
    (folder / "returns").mkdir()
    write_json_atomic(folder / "returns" / "config.json", {})
    assert peek_checkpoint(folder).offers_best
    (folder / "config.json").write_text("{broken")
    assert peek_checkpoint(folder) is None
