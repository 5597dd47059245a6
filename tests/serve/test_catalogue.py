"""Hostile uploads, built here byte by byte: each is refused with a clear message, before
memory is spent on it, and leaves nothing behind."""

import json
import struct
import zipfile

import numpy as np
import pytest
from safetensors.torch import save_file

from dt_playground.checkpoints import layout
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.checkpoints.uploads import extract_upload
from dt_playground.errors import CheckpointError, PlaygroundError
from dt_playground.rollout import sweep
from dt_playground.serve import catalogue
from dt_playground.serve.sessions import SessionStore


@pytest.fixture
def store(tmp_path):
    st = SessionStore(tmp_path / "sessions", tmp_path / "videos")
    st.clean_start()
    return st


@pytest.fixture
def good(tiny_zoo):
    """The files of a valid checkpoint: name -> bytes."""
    return {f.name: f.read_bytes() for f in (tiny_zoo / "cartpole-dt").iterdir()}


def _zip(path, files: dict, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _with_config(good: dict, **changes) -> dict:
    cfg = json.loads(good["config.json"])
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        d = cfg
        for p in parents:
            d = d[p]
        d[key] = value
    return {**good, "config.json": json.dumps(cfg)}


def _patch_zip(data: bytes, *, flags=None, method=None, size=None) -> bytes:
    """Rewrite fields of every local (PK\\3\\4) and central (PK\\1\\2) header."""
    b = bytearray(data)
    for sig, f_off, m_off, s_off in ((b"PK\x03\x04", 6, 8, 22), (b"PK\x01\x02", 8, 10, 24)):
        i = b.find(sig)
        while i >= 0:
            if flags is not None:
                struct.pack_into("<H", b, i + f_off, flags)
            if method is not None:
                struct.pack_into("<H", b, i + m_off, method)
            if size is not None:
                struct.pack_into("<I", b, i + s_off, size)
            i = b.find(sig, i + 4)
    return bytes(b)


def _refused(store, tmp_path, name: str, data: bytes, match: str):
    """Upload ``data``: refused with ``match``, no folder left, the session still works."""
    sid = store.new()
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(PlaygroundError, match=match) as err:
        catalogue.import_upload(store, sid, path)
    assert str(tmp_path) not in str(err.value)  # no server paths in messages
    assert not store.get(sid).dir.exists()  # nothing half-written
    assert store.owned(sid) == {}
    assert layout.choices("CartPole-v1", store.owned(sid))  # the session still lists
    return err.value


def test_huge_model_refused_before_building(good, tmp_path, store):
    """Each dimension within its bound, their product far beyond: refused by arithmetic."""
    files = _with_config(good, model__hidden=4096, model__n_layers=48, model__n_heads=1)
    _refused(store, tmp_path, "big.zip", _zip(tmp_path / "b.zip", files).read_bytes(), "parameters")
    files = _with_config(good, model__hidden=2048, model__context_len=1000, model__n_layers=1)
    _refused(
        store,
        tmp_path,
        "act.zip",
        _zip(tmp_path / "a.zip", files).read_bytes(),
        "activations|parameters",
    )
    files = _with_config(good, model__n_layers=1000)
    _refused(store, tmp_path, "deep.zip", _zip(tmp_path / "d.zip", files).read_bytes(), "n_layers")


def test_safetensors_header_checked_before_loading(good, tmp_path, store):
    huge = struct.pack("<Q", 50 * 1024 * 1024) + b"{" + b" " * 1000
    files = {**good, "model.safetensors": huge}
    _refused(
        store, tmp_path, "hdr.zip", _zip(tmp_path / "h.zip", files).read_bytes(), "header claims"
    )
    # a well-formed header whose shapes disagree with the config
    save_file({"embed_state.weight": __import__("torch").zeros(2, 2)}, str(tmp_path / "w.st"))
    files = {**good, "model.safetensors": (tmp_path / "w.st").read_bytes()}
    _refused(
        store,
        tmp_path,
        "shape.zip",
        _zip(tmp_path / "s.zip", files).read_bytes(),
        "does not match config.json",
    )
    # an int tensor where weights must be floats
    header = json.dumps(
        {"embed_state.weight": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}
    ).encode()
    st = struct.pack("<Q", len(header)) + header + b"\0" * 8
    err = _refused(
        store,
        tmp_path,
        "dtype.zip",
        _zip(tmp_path / "t.zip", {**good, "model.safetensors": st}).read_bytes(),
        "does not match|I64",
    )
    assert "safetensors" in str(err)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"state_mean": ["a", "b", "c", "d"]}, "state_mean"),
        ({"model__dropout": "abc"}, "dropout"),
        ({"model__discrete": "yes"}, "discrete"),
        ({"model__token_order": "xyz"}, "token_order"),
        ({"model__return_bins": 5000}, "return_bins"),
        ({"env_id": ["CartPole-v1"]}, "env_id"),
        ({"return_scale": True}, "return_scale"),
        ({"dataset__return_max": "lots"}, "dataset.return_max"),
        ({"dataset__behaviours": {"0": {"label": 5}}}, "behaviours"),
    ],
)
def test_ill_typed_config_refused(good, tmp_path, store, changes, match):
    files = _with_config(good, **changes)
    _refused(store, tmp_path, "c.zip", _zip(tmp_path / "c0.zip", files).read_bytes(), match)


def test_nested_json_refused_and_session_keeps_working(good, tmp_path, store):
    deep = "[" * 100_000 + "]" * 100_000
    files = {**good, "config.json": deep}
    _refused(
        store, tmp_path, "n.zip", _zip(tmp_path / "n0.zip", files).read_bytes(), "not valid JSON"
    )
    ok = _zip(tmp_path / "ok.zip", good)
    sid = store.new()
    _, cid, _ = catalogue.import_upload(store, sid, ok)  # the next upload works
    assert cid in store.owned(sid)


def test_broken_zips_refused(good, tmp_path, store):
    plain = _zip(tmp_path / "p.zip", good).read_bytes()
    stored = _zip(tmp_path / "s.zip", good, zipfile.ZIP_STORED).read_bytes()
    # corrupt deflate stream: flip bytes in the middle of the compressed data
    b = bytearray(plain)
    start = b.find(b"model.safetensors") + 40
    b[start : start + 64] = bytes(64)
    _refused(store, tmp_path, "deflate.zip", bytes(b), "corrupt|not valid|does not match")
    _refused(store, tmp_path, "enc.zip", _patch_zip(plain, flags=1), "encrypted")
    _refused(store, tmp_path, "method.zip", _patch_zip(plain, method=99), "compression")
    # sizes that lie: the directory says 10 bytes, the data inflates to much more
    _refused(store, tmp_path, "lie.zip", _patch_zip(stored, size=10), "corrupt|inflates")
    _refused(store, tmp_path, "trunc.zip", plain[: len(plain) // 2], "not a zip|corrupt")
    _refused(
        store,
        tmp_path,
        "empty.zip",
        _zip(tmp_path / "e.zip", {"x.txt": "hi"}).read_bytes(),
        "no checkpoint files",
    )


def test_zip_bomb_refused_while_inflating(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"config.json": b"0" * (20 * 1024 * 1024)})
    with pytest.raises(CheckpointError, match="larger than"):
        extract_upload(bomb, tmp_path / "out")


def test_broken_pretrained_checkpoint_is_skipped(tiny_zoo, tmp_path, monkeypatch):
    """A pretrained folder whose config.json is valid JSON but not an object, or whose
    weights are corrupt, is left out of lists and skipped by compare with a note."""
    import shutil

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    shutil.copytree(zoo / "cartpole-bc", zoo / "cartpole-broken")
    (zoo / "cartpole-broken" / "model.safetensors").write_bytes(b"junk")
    (zoo / "cartpole-list").mkdir()
    (zoo / "cartpole-list" / "config.json").write_text("[1, 2]")
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(zoo))
    values = [v for _, v in layout.choices("CartPole-v1")]
    assert "cartpole-list" not in values and "cartpole-dt" in values
    notes: list[str] = []
    res = sweep.compare_models("CartPole-v1", 1, seed=3, max_steps=20, notes=notes)
    assert len(res) == 2 and len(notes) == 1 and "cartpole-broken" in notes[0]
    assert str(tmp_path) not in notes[0]
    with pytest.raises(CheckpointError):
        load_checkpoint(zoo / "cartpole-list")


def test_fp16_weights_load(good, tmp_path):
    """Half-precision weights are accepted (the zoo may ship them) and cast to fp32."""
    from safetensors.torch import load_file

    ck = tmp_path / "ck"
    ck.mkdir()
    for name, data in good.items():
        (ck / name).write_bytes(data)
    state = {k: v.half() for k, v in load_file(str(ck / "model.safetensors")).items()}
    save_file(state, str(ck / "model.safetensors"))
    loaded = load_checkpoint(ck)
    w = next(loaded.model.parameters())
    assert w.dtype.is_floating_point and str(w.dtype) == "torch.float32"
    assert np.isfinite(w.detach().numpy()).all()
