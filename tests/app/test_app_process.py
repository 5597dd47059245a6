"""The app as it is hosted: `python app.py` in its own process, under a memory limit (so a
regression can't take CI down), driven by real `gradio_client.Client`s."""

import json
import os
import resource
import struct
import zipfile
from pathlib import Path

import pytest
from helpers import app_subprocess, free_port, predict

pytestmark = [pytest.mark.process, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 4 * 1024**3  # address space; the app idles at ~1 GB of it


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def app_process(tiny_zoo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    env = {
        **os.environ,
        "DTP_PRETRAINED_DIR": str(tiny_zoo),
        "DTP_SESSIONS_DIR": str(tmp / "sessions"),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(free_port()),
        "MALLOC_ARENA_MAX": "2",  # per-thread malloc arenas would eat the address space
    }
    with app_subprocess(REPO, env, tmp / "app.log", preexec_fn=_limit_memory) as (proc, url):
        yield proc, url, tmp


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def _good_files(tiny_zoo) -> dict:
    return {f.name: f.read_bytes() for f in (tiny_zoo / "cartpole-dt").iterdir()}


def _zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _upload(client, path):
    """(env, checkpoint id, message) of an /upload (dropdown updates carry a value)."""
    from gradio_client import handle_file

    out = predict(client, handle_file(str(path)), "CartPole-v1", api_name="/upload")
    return [o["value"] if isinstance(o, dict) else o for o in out]


def test_oversized_model_is_refused_and_server_survives(app_process, tiny_zoo, tmp_path):
    """The 686 KB upload that killed the server: every dimension within bounds, the
    product enormous. Refused before anything is built; RSS stays put."""
    from gradio_client.exceptions import AppError

    proc, url, _ = app_process
    c = _client(url)
    files = _good_files(tiny_zoo)
    cfg = json.loads(files["config.json"])
    cfg["model"].update(hidden=4096, n_layers=48, n_heads=1)
    big = _zip(tmp_path / "big.zip", {**files, "config.json": json.dumps(cfg)})
    before = _rss_mb(proc.pid)
    with pytest.raises(AppError, match="parameters"):
        _upload(c, big)
    # a ~50 MB safetensors header, eight times: refused from its first 8 bytes
    hdr = struct.pack("<Q", 50 * 1024 * 1024) + b"{" + b" " * (1024 * 1024)
    evil = _zip(tmp_path / "hdr.zip", {**files, "model.safetensors": hdr})
    for _ in range(8):
        with pytest.raises(AppError, match="header claims"):
            _upload(c, evil)
    assert proc.poll() is None
    assert _rss_mb(proc.pid) - before < 150  # MB; was +800 MB per upload
    out = predict(c, "CartPole-v1", "cartpole-dt", 100, 0, False, api_name="/play")
    assert out[4]["requested"] == 100


def test_sessions_cannot_reach_each_other(app_process, tiny_zoo, tmp_path):
    """Alice's upload is hers: Bob can't play, inspect or list it, even knowing its id;
    replies carry ids, never server paths."""
    from gradio_client.exceptions import AppError

    proc, url, tmp = app_process
    alice, bob = _client(url), _client(url)
    env, cid, msg = _upload(alice, _zip(tmp_path / "ok.zip", _good_files(tiny_zoo)))
    assert env == "CartPole-v1" and cid.startswith("upload-")
    assert str(tmp) not in json.dumps([env, cid, msg])
    mine = predict(alice, "CartPole-v1", cid, 100, 1, False, api_name="/play")[4]
    assert mine["requested"] == 100 and str(tmp) not in json.dumps(mine)
    for api, args in [
        ("/play", (cid, 100, 1, False)),
        ("/dataset", (cid,)),
        ("/attention", (cid, 100, 1, False, 3)),
        ("/sweep", (cid, 2, 1, 0)),
    ]:
        with pytest.raises(AppError, match="Unknown checkpoint") as err:
            predict(bob, "CartPole-v1", *args, api_name=api)
        assert str(tmp) not in str(err.value)
    listed = predict(bob, "CartPole-v1", api_name="/checkpoints")
    assert cid not in json.dumps(listed)
    assert cid in json.dumps(predict(alice, "CartPole-v1", api_name="/checkpoints"))


def test_nested_json_then_everything_still_works(app_process, tiny_zoo, tmp_path):
    from gradio_client.exceptions import AppError

    proc, url, tmp = app_process
    c = _client(url)
    files = _good_files(tiny_zoo)
    nested = _zip(tmp_path / "n.zip", {**files, "config.json": "[" * 50_000 + "]" * 50_000})
    with pytest.raises(AppError, match="not valid JSON"):
        _upload(c, nested)
    assert predict(c, "CartPole-v1", api_name="/checkpoints")  # was broken after this upload
    assert _upload(c, _zip(tmp_path / "ok.zip", files))[1].startswith("upload-")
    leftovers = [p for p in (tmp / "sessions").rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no staging folders


@pytest.mark.parametrize(
    "api,args,match",
    [
        ("/play", (None, "cartpole-dt", 100, 0, False), "environment"),
        ("/play", ("CartPole-v1", "cartpole-dt", 100, "abc", False), "Seed must be"),
        ("/attention", ("CartPole-v1", "cartpole-dt", 100, 0, False, "x"), "Step must be"),
        ("/sweep", ("CartPole-v1", "cartpole-dt", "many", 2, 0), "Number of targets"),
        ("/sweep", (None, "cartpole-dt", 3, 2, 0), "environment"),
        ("/compare", (None, 2, 0), "environment"),
        ("/compare", ("CartPole-v1", "two", 0), "Seeds must be"),
        ("/dataset", (None, "cartpole-dt"), "environment"),
        ("/checkpoints", (None,), "environment"),
        ("/target_range", (None, "cartpole-dt"), None),
        ("/train", ("CartPole-v1", "dt", "lots", 20, 0.001), "must be numbers"),
    ],
)
def test_bad_values_get_clear_messages(app_process, api, args, match):
    from gradio_client.exceptions import AppError

    _, url, _ = app_process
    c = _client(url)
    if match is None:  # /target_range answers in its markdown instead of failing
        _, md = predict(c, *args, api_name=api)
        assert "environment" in md.lower()
        return
    with pytest.raises(AppError, match=match):
        predict(c, *args, api_name=api)


def test_no_unnamed_endpoints(app_process):
    _, url, _ = app_process
    info = _client(url).view_api(return_format="dict", print_info=False)
    names = set(info["named_endpoints"])
    assert "/on_env_change" not in names and not info.get("unnamed_endpoints")
    assert {"/play", "/sweep", "/compare", "/train", "/dataset", "/upload", "/checkpoints"} <= names


def test_upload_of_a_transformers_folder_plays(app_process, tmp_path):
    """A zipped `transformers` DT folder (safetensors + its stats sidecar) is converted on
    upload and plays; the same folder with a pickle instead of safetensors is refused."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    cfg = transformers.DecisionTransformerConfig(
        state_dim=11, act_dim=3, hidden_size=32, n_layer=1, n_head=1, max_ep_len=1000
    )
    model = transformers.DecisionTransformerModel(cfg)
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    stats = {
        "env_id": "Hopper-v5",
        "state_mean": [0.0] * 11,
        "state_std": [1.0] * 11,
        "scale": 1000.0,
        "max_len": 5,
    }
    files = {p.name: p.read_bytes() for p in (tmp_path / "hf").iterdir()}
    files["dt_playground.json"] = json.dumps(stats).encode()
    _, url, _ = app_process
    c = _client(url)
    env, cid, msg = _upload(c, _zip(tmp_path / "hf.zip", files))
    assert env == "Hopper-v5" and cid.startswith("upload-")
    summary = predict(c, "Hopper-v5", cid, 1000, 0, False, api_name="/play")[4]
    assert summary["length"] >= 1
    from gradio_client.exceptions import AppError

    pickled = {k: v for k, v in files.items() if k != "model.safetensors"}
    pickled["pytorch_model.bin"] = b"\x80\x04 a pickle"
    with pytest.raises(AppError, match="no checkpoint files|model.safetensors"):
        _upload(c, _zip(tmp_path / "pkl.zip", pickled))
