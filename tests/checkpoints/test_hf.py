"""Hugging Face: transformers' DecisionTransformerModel <-> our checkpoints, and Hub cards.

The transformers tests skip when it isn't installed (the Space doesn't install it);
the card tests need only huggingface_hub (a gradio dependency) and run offline.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_model

from dt_playground.checkpoints import hf, hub_card
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.cli.main import main
from dt_playground.envs.registry import get_spec, make_env
from dt_playground.errors import CheckpointError
from dt_playground.paths import PRETRAINED_DIR
from dt_playground.rollout.policy import DTPolicy

HOPPER_STATE, HOPPER_ACT = 11, 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: a second thread only adds contention (these tests run beside others)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def random_hf(transformers, tmp_path_factory):
    """A random transformers DT for Hopper, saved as safetensors, with a stats file. Its
    position embedding and attention scaling differ from ours, so import must fold them."""
    torch.manual_seed(0)
    cfg = transformers.DecisionTransformerConfig(
        state_dim=HOPPER_STATE,
        act_dim=HOPPER_ACT,
        hidden_size=64,
        n_layer=2,
        n_head=2,
        max_ep_len=1000,
        scale_attn_by_inverse_layer_idx=True,
    )
    model = transformers.DecisionTransformerModel(cfg).eval()
    with torch.no_grad():
        model.encoder.wpe.weight.normal_(0.0, 0.5)
        for p in model.parameters():  # off the init, so every weight matters
            p.add_(torch.randn_like(p) * 0.05)
        model.predict_action[0].weight.mul_(0.05)  # gentle actions: Hopper stays up 50 steps
        model.predict_action[0].bias.mul_(0.05)
    d = tmp_path_factory.mktemp("hf") / "random-dt"
    model.save_pretrained(d, safe_serialization=True)
    stats = d.parent / "stats.json"
    rng = np.random.default_rng(0)
    stats.write_text(
        json.dumps(
            {
                "state_mean": rng.normal(0, 0.1, HOPPER_STATE).tolist(),
                "state_std": rng.uniform(0.5, 2, HOPPER_STATE).tolist(),
                "scale": 1000.0,
            }
        )
    )
    return model, d, stats


def _hf_last(model, w: dict) -> np.ndarray:
    with torch.no_grad():
        out = model(
            states=torch.from_numpy(w["states"]),
            actions=torch.from_numpy(w["actions"]),
            returns_to_go=torch.from_numpy(w["rtg"]),
            timesteps=torch.from_numpy(w["timesteps"]),
            attention_mask=torch.from_numpy(w["mask"]).long(),
        )
    return out.action_preds[:, -1].numpy()


def test_imported_model_acts_as_transformers_at_every_step(random_hf, tmp_path):
    model, src, stats = random_hf
    out = tmp_path / "imported"
    assert (
        main(
            [
                "import-hf",
                "--model",
                str(src),
                "--env",
                "Hopper-v5",
                "--state-stats",
                str(stats),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ck = load_checkpoint(out, expect_env="Hopper-v5")
    assert ck.config["return_scale"] == 1000.0 and ck.model.cfg.context_len == 20

    class Checked(DTPolicy):
        """Compares each chosen action with transformers' forward on the same window."""

        def act(self, rows, t, obs):
            acts = super().act(rows, t, obs)
            errors.append(
                np.abs(_hf_last(model, self.window(rows, t)) - self.actions[rows, t]).max()
            )
            return acts

    for engine in ("fast", "reference"):
        errors = []
        policy = Checked(ck.model, ck.norm, ck.spec, engine=engine)
        # run_episodes' loop, but a random model's hopper may fall before step 50: the
        # simulation goes on regardless, so every step still has a history to compare
        envs = [make_env(ck.spec) for _ in range(2)]
        obs = np.stack([e.reset(seed=s)[0] for e, s in zip(envs, (7, 8))])
        policy.reset([3000.0, 500.0], [7, 8], 50)
        rows = np.arange(2)
        for t in range(50):
            acts = policy.act(rows, t, obs)
            steps = [e.step(a) for e, a in zip(envs, acts)]
            obs = np.stack([s[0] for s in steps])
            policy.observe(rows, np.array([s[1] for s in steps]))
        assert len(errors) == 50 and max(errors) < 1e-4, (engine, max(errors))
        # the actions really vary: a constant policy would pass trivially
        assert np.ptp(policy.actions[:, :50], axis=1).min() > 1e-3


def _windows(n: int = 6, K: int = 20, seed: int = 0) -> dict:
    """Random windows in the model's input units, some left-padded as early in an episode."""
    rng = np.random.default_rng(seed)
    mask = np.ones((n, K), np.float32)
    for i, pad in enumerate([0, 3, 19, 0, 10, 1][:n]):
        mask[i, :pad] = 0
    m = mask[..., None]
    return {
        "states": (rng.normal(size=(n, K, HOPPER_STATE)) * m).astype(np.float32),
        "actions": (rng.uniform(-1, 1, (n, K, HOPPER_ACT)) * m).astype(np.float32),
        "rtg": (rng.uniform(0, 3.5, (n, K, 1)) * m).astype(np.float32),
        "timesteps": (np.arange(K)[None] + rng.integers(0, 900, (n, 1))).astype(np.int64),
        "mask": mask,
    }


def test_export_loads_cleanly_and_matches_to_1e4(transformers, tmp_path, capfd):
    ck_dir = PRETRAINED_DIR / "hopper-dt"
    out = tmp_path / "hopper-dt-hf"
    assert (
        main(["export", "--checkpoint", str(ck_dir), "--format", "transformers", "--out", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        hf.SIDECAR,
        "model.safetensors",
    ]
    capfd.readouterr()
    transformers.logging.set_verbosity_warning()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        model, info = transformers.DecisionTransformerModel.from_pretrained(
            out, output_loading_info=True
        )
    finally:
        logger.removeHandler(handler)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set() and not info["error_msgs"]
    said = " ".join(r.getMessage() for r in records) + capfd.readouterr().err
    for word in ("missing", "unexpected", "newly initialized", "not used", "MISSING"):
        assert word not in said, said

    ck = load_checkpoint(ck_dir)
    side = json.loads((out / hf.SIDECAR).read_text())
    assert side["state_mean"] == ck.config["state_mean"] and side["scale"] == 1000.0
    assert side["max_len"] == 20 and side["env_id"] == "Hopper-v5"
    w = _windows()
    with torch.no_grad():
        ours = ck.model(
            *(torch.from_numpy(w[k]) for k in ("rtg", "states", "actions", "timesteps", "mask"))
        )
        theirs = model.eval()(
            states=torch.from_numpy(w["states"]),
            actions=torch.from_numpy(w["actions"]),
            returns_to_go=torch.from_numpy(w["rtg"]),
            timesteps=torch.from_numpy(w["timesteps"]),
            attention_mask=torch.from_numpy(w["mask"]).long(),
        ).action_preds
    real = torch.from_numpy(w["mask"]).bool()
    assert (ours - theirs)[real].abs().max() < 1e-4

    # ... and back: the sidecar makes the export self-describing (no --env, no stats)
    back = tmp_path / "back"
    assert main(["import-hf", "--model", str(out), "--out", str(back)]) == 0
    ck2 = load_checkpoint(back)
    assert ck2.config["state_std"] == ck.config["state_std"]
    assert ck2.model.cfg.context_len == ck.model.cfg.context_len
    assert ck2.config["dataset"]["return_max"] == ck.config["dataset"]["return_max"]
    for k, v in ck.model.state_dict().items():
        assert torch.allclose(v, ck2.model.state_dict()[k], atol=1e-6), k
    assert hf.is_transformers_folder(out) and not hf.is_transformers_folder(ck_dir)


def test_round_trip_needs_no_transformers(tmp_path, monkeypatch):
    """The Space doesn't install transformers: export and import must not import it."""
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    out = hf.export_transformers(PRETRAINED_DIR / "hopper-dt", tmp_path / "hf")
    back = hf.import_transformers_folder(out, tmp_path / "ck")
    w = _windows(seed=1)
    inputs = [torch.from_numpy(w[k]) for k in ("rtg", "states", "actions", "timesteps", "mask")]
    with torch.no_grad():
        a = load_checkpoint(PRETRAINED_DIR / "hopper-dt").model(*inputs)
        b = load_checkpoint(back).model(*inputs)
    real = inputs[-1].bool()
    assert (a - b)[real].abs().max() < 1e-5
    # in place, as the app converts an unzipped upload in its staging folder
    assert hf.import_transformers_folder(out, out) == out and not hf.is_transformers_folder(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    load_checkpoint(out, expect_env="Hopper-v5")


def test_import_skips_old_gpt2_mask_buffers(tmp_path):
    """Older transformers saved GPT-2's causal-mask buffers; they are skipped, not refused."""
    from safetensors.torch import load_file, save_file

    src = hf.export_transformers(PRETRAINED_DIR / "hopper-dt", tmp_path / "hf")
    state = load_file(src / "model.safetensors")
    for i in range(3):
        state[f"encoder.h.{i}.attn.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool).tril()
        state[f"encoder.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, src / "model.safetensors", metadata={"format": "pt"})
    ck = load_checkpoint(hf.import_transformers_folder(src, tmp_path / "ck"))
    ours = load_checkpoint(PRETRAINED_DIR / "hopper-dt").model.state_dict()
    assert torch.equal(ck.model.state_dict()["ln_f.bias"], ours["ln_f.bias"])


@pytest.mark.parametrize(
    "name,why", [("cartpole-dt", "discrete actions"), ("hopper-bc", "without return tokens")]
)
def test_export_refuses_what_does_not_map(name, why, tmp_path):
    with pytest.raises(CheckpointError, match=why):
        hf.export_transformers(PRETRAINED_DIR / name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_return_head(tmp_path):
    from dt_playground.checkpoints.checkpoint import save_checkpoint

    config = {
        k: v
        for k, v in load_checkpoint(PRETRAINED_DIR / "hopper-dt").config.items()
        if k in ("env_id", "algo", "state_mean", "state_std", "return_scale")
    }
    head = tiny_model(
        "Hopper-v5", n_layers=1, return_bins=8, return_low=0.0, return_high=3.5, token_order="sra"
    )
    save_checkpoint(tmp_path / "head", head, config)
    with pytest.raises(CheckpointError, match="return-distribution head"):
        hf.export_transformers(tmp_path / "head", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _hf_folder(tmp_path: Path, **overrides) -> Path:
    """A transformers-style folder from the exported hopper-dt, with config overrides."""
    d = tmp_path / "src"
    if not d.exists():
        hf.export_transformers(PRETRAINED_DIR / "hopper-dt", d)
    c = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**c, **overrides}))
    return d


class _Touch:
    """Unpickling this creates a file: proof that a pickle was (or wasn't) opened."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_import_refuses_pickles_and_hostile_folders(tmp_path):
    src = _hf_folder(tmp_path)
    marker = tmp_path / "unpickled"
    (src / "model.safetensors").unlink()
    (src / "pytorch_model.bin").write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(CheckpointError, match="pytorch_model.bin is a pickle"):
        hf.import_transformers_folder(src, tmp_path / "out", "Hopper-v5")
    assert not marker.exists() and not (tmp_path / "out").exists()
    hf.export_transformers(PRETRAINED_DIR / "hopper-dt", src)

    cases = [
        ({"hidden_size": 10**9}, "hidden_size"),
        ({"n_positions": 10**6, "vocab_size": 10**6}, "parameters"),
        ({"activation_function": "gelu_new"}, "activation_function"),
        ({"action_tanh": False}, "action_tanh"),
        ({"n_inner": 100}, "n_inner"),
        ({"state_dim": 12}, "does not match|state_mean"),
        ({"model_type": "gpt2"}, "not a transformers Decision Transformer"),
    ]
    good = (src / "config.json").read_text()
    for overrides, why in cases:
        with pytest.raises(CheckpointError, match=why):
            hf.import_transformers_folder(_hf_folder(tmp_path, **overrides), tmp_path / "o")
        (src / "config.json").write_text(good)
    with pytest.raises(CheckpointError, match="does not fit|HalfCheetah"):
        hf.import_transformers_folder(src, tmp_path / "o", "HalfCheetah-v5")
    with pytest.raises(CheckpointError, match="Unknown environment"):
        hf.import_transformers_folder(src, tmp_path / "o", "Hopper-v9")
    side = json.loads((src / hf.SIDECAR).read_text())
    (src / hf.SIDECAR).unlink()
    with pytest.raises(CheckpointError, match="missing state_mean, state_std, scale"):
        hf.import_transformers_folder(src, tmp_path / "o", "Hopper-v5")
    stats = {k: side[k] for k in ("state_mean", "state_std", "scale")}  # no env in it
    with pytest.raises(CheckpointError, match="Which environment"):
        hf.import_transformers_folder(src, tmp_path / "o", stats=stats)
    hf.import_transformers_folder(src, tmp_path / "fb", stats=stats, fallback_env="Hopper-v5")
    assert load_checkpoint(tmp_path / "fb").spec.env_id == "Hopper-v5"
    # a header that lies about a shape is refused before any tensor is read
    raw = (src / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].replace(b'"shape":[1000,128]', b'"shape":[1000,129]')
    (src / "model.safetensors").write_bytes(raw[:8] + header + raw[8 + n :])
    with pytest.raises(CheckpointError, match="embed_timestep"):
        hf.import_transformers_folder(
            src, tmp_path / "o", "Hopper-v5", stats=PRETRAINED_DIR / "hopper-dt" / "config.json"
        )
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- cards


def _shipped() -> list[Path]:
    return sorted(p.parent for p in PRETRAINED_DIR.glob("*/config.json"))


def test_shipped_cards_have_hub_front_matter(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import ModelCard

    assert len(_shipped()) >= 20
    for d in _shipped():
        text = (d / "README.md").read_text()
        assert text == hub_card.render(d), f"{d.name}: run `python -m dt_playground card`"
        data = ModelCard(text).data
        config = json.loads((d / "config.json").read_text())
        card = json.loads((d / "card.json").read_text())
        assert data.library_name == "dt-playground"
        kind = "iql" if config["algo"] == "iql" else "decision-transformer"
        assert {kind, "offline-rl", "gymnasium", config["env_id"]} <= set(data.tags)
        assert data.datasets == [config["dataset"]["dataset_id"]]
        top = max(card["per_target"], key=lambda r: r["target"])
        res = data.eval_results[0]
        assert res.metric_type == "mean_reward" and res.dataset_type == config["env_id"]
        mean, std = (float(x) for x in res.metric_value.split("+/-"))
        assert abs(mean - top["mean"]) < 0.01 and abs(std - top["std"]) < 0.01
        assert res.metric_args["seeds"] == f"{card['seeds'][0]}..{card['seeds'][-1]}"
        assert len(data.eval_results) == 1 + ("best_mean" in card)


def test_card_cli_regenerates(tmp_path):
    d = tmp_path / "hopper-dt"
    d.mkdir()
    for f in ("config.json", "card.json"):
        (d / f).write_bytes((PRETRAINED_DIR / "hopper-dt" / f).read_bytes())
    card = json.loads((d / "card.json").read_text())
    card.update(best_mean=3100.5, best_std=100.25, best_shortfall=0.072, best_kappa=12.5)
    (d / "card.json").write_text(json.dumps(card))
    assert main(["card", "--checkpoint", str(d)]) == 0
    from huggingface_hub import ModelCard

    data = ModelCard((d / "README.md").read_text()).data
    assert [r.metric_value for r in data.eval_results][1] == "3100.50 +/- 100.25"
    assert (
        "Target `best` (kappa 12.5): 3100.5 ± 100.2 (shortfall 7.2%"
        in (d / "README.md").read_text()
    )
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []
    assert get_spec(data.eval_results[0].dataset_type).env_id == "Hopper-v5"


def test_a_dts_hub_card_carries_its_checked_rows(tmp_path):
    d = tmp_path / "hopper-dt"
    (d / "critic").mkdir(parents=True)
    for f in ("config.json", "card.json"):
        (d / f).write_bytes((PRETRAINED_DIR / "hopper-dt" / f).read_bytes())
    assert "Checked by its critic" not in hub_card.render(d)
    (d / "critic" / "card.json").write_text(
        json.dumps(
            {
                "seeds": [1_000_000, 1_000_009],
                "n": 5,
                "spread": 0.1,
                "rows": [
                    {"target": 404.04, "plain": 430.0, "checked": 410.5},
                    {"target": "best", "plain": 2975.7, "checked": 3050.25},
                ],
                "spearman_plain": 0.929,
                "spearman_checked": 0.95,
                "abs_err_plain": 120.8,
                "abs_err_checked": 80.5,
                "default": "checked",
            }
        )
    )
    text = hub_card.render(d)
    assert "## Checked by its critic" in text and "| 404.0 | 430.0 | 410.5 |" in text
    assert "| best | 2975.7 | 3050.2 |" in text and "**checked**" in text
