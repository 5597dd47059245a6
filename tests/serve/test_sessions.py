"""serve.sessions (with serve.catalogue): uploads, checkpoints and videos per session."""

import zipfile

import pytest

from dt_playground.checkpoints import layout
from dt_playground.errors import PlaygroundError
from dt_playground.serve import catalogue


@pytest.fixture
def zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    return tiny_zoo


@pytest.fixture
def store(tmp_path):
    from dt_playground.serve.sessions import SessionStore

    st = SessionStore(tmp_path / "sessions", tmp_path / "videos")
    st.clean_start()
    return st


def test_upload_round_trip_and_refusals(zoo, tmp_path, store):
    z = tmp_path / "ck.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (zoo / "cartpole-dt").iterdir():
            zf.write(f, f"cartpole-dt/{f.name}")
    sid, cid, ck = catalogue.import_upload(store, None, z)  # an API client starts without a session
    assert ck.spec.env_id == "CartPole-v1"
    assert str(tmp_path) not in cid and "/" not in cid  # an opaque id, not a path
    assert cid in [v for _, v in layout.choices("CartPole-v1", store.owned(sid))]
    assert catalogue.resolve(cid, "CartPole-v1", store.owned(sid)).path == ck.path
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"\x80\x04\x95 pickle, not a zip")
    with pytest.raises(PlaygroundError, match="not a zip"):
        catalogue.import_upload(store, sid, fake)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.safetensors", b"garbage")
    with pytest.raises(PlaygroundError, match="missing 'env_id'"):
        catalogue.import_upload(store, sid, bad)
    session_dir = store.get(sid).dir
    assert sorted(p.name for p in (session_dir / "upload").iterdir()) == [cid]  # no leftovers
    store.end(sid)
    assert not session_dir.exists()
    with pytest.raises(PlaygroundError, match="Unknown checkpoint"):
        catalogue.resolve(cid, "CartPole-v1", store.owned(sid))


def test_sessions_own_their_checkpoints(zoo, tmp_path, store):
    """An id is valid in its own session only; paths and names outside pretrained/ are
    refused; a refused upload leaves no session folder."""
    z = tmp_path / "ck.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (zoo / "cartpole-bc").iterdir():
            zf.write(f, f.name)
    alice, bob = store.new(), store.new()
    _, cid, ck = catalogue.import_upload(store, alice, z)
    assert catalogue.resolve(cid, "CartPole-v1", store.owned(alice)).path == ck.path
    assert catalogue.resolve("cartpole-dt", "CartPole-v1", store.owned(bob)).name == "cartpole-dt"
    for who, value in [
        (bob, cid),
        (None, cid),
        (bob, str(ck.path)),
        (alice, str(ck.path)),
        (alice, str(zoo / "cartpole-dt")),
        (alice, "../cartpole-dt"),
        (alice, "a/b"),
        (alice, "."),
        (alice, "missing"),
    ]:
        with pytest.raises(PlaygroundError, match="Unknown checkpoint") as err:
            catalogue.resolve(value, "CartPole-v1", store.owned(who))
        # The message may echo what the user sent (cut to 60 characters); beyond that echo
        # it must name no server path, whatever the length of this machine's tmp paths.
        said = str(err.value).replace(repr(value[:60]), "<input>", 1)
        assert said.startswith("Unknown checkpoint <input>.")
        for server_path in (tmp_path, zoo, ck.path, store.get(alice).dir):
            assert str(server_path) not in said
        assert "/" not in said
    with pytest.raises(PlaygroundError, match="Pick a checkpoint"):
        catalogue.resolve("", "CartPole-v1", store.owned(alice))
    with pytest.raises(PlaygroundError, match="trained on CartPole-v1"):
        catalogue.resolve("cartpole-dt", "Pendulum-v1", store.owned(alice))
    for env in (None, "", 3, "Nope-v0"):
        with pytest.raises(PlaygroundError, match="environment|Environment"):
            catalogue.resolve("cartpole-dt", env, store.owned(alice))
    carol = store.new()
    with pytest.raises(PlaygroundError):
        catalogue.import_upload(store, carol, tmp_path / "missing.zip")
    assert not store.get(carol).dir.exists()


def test_videos_are_bounded_per_session(store):
    from dt_playground.serve import sessions

    sid = store.new()
    made = []
    for _ in range(sessions.VIDEOS_PER_SESSION + 2):
        p = store.video_path(sid, "x")
        p.write_bytes(b"v")
        made.append(p)
    assert [p.exists() for p in made] == [False] * 2 + [True] * sessions.VIDEOS_PER_SESSION
    assert len({p.name for p in made}) == len(made)
    store.end(sid)
    assert not any(p.exists() for p in made)
