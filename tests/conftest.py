import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread per process: tests start app servers and torchrun workers beside this
# process, and OpenMP threads fighting over 2 cores made some tests 20-40x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from dt_playground.behaviour.collect import collect_episodes  # noqa: E402
from dt_playground.data.storage import write_minari  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cartpole_dataset(tmp_path_factory):
    """A small mixed-quality CartPole dataset on disk (Minari layout)."""
    root = tmp_path_factory.mktemp("datasets")
    episodes = collect_episodes("CartPole-v1", 24, seed=0)
    path = write_minari(episodes, "dtp/cartpole/test-v0", "CartPole-v1", root=root)
    return path, episodes


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, cartpole_dataset):
    """A pretrained-style folder with a briefly trained CartPole DT and BC."""
    from dt_playground.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("zoo")
    for algo in ("dt", "bc"):
        train(
            TrainConfig(
                dataset=str(cartpole_dataset[0]),
                out=str(root / f"cartpole-{algo}"),
                algo=algo,
                steps=30,
                batch_size=16,
                context_len=5,
                hidden=32,
                n_layers=1,
                eval_episodes=0,
                save_every=0,
                seed=0,
            )
        )
    return root


@pytest.fixture(scope="module")
def app_client(tiny_zoo):
    """The app launched in-process on the tiny zoo, and a `gradio_client.Client` to it
    (one per test module)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DTP_PRETRAINED_DIR", str(tiny_zoo))
    import app

    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    from gradio_client import Client

    client = Client(url, verbose=False)
    yield client
    client.close()
    demo.close()
    mp.undo()


TEMP_FIXTURES = {"tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory"}


def pytest_collection_modifyitems(config, items):
    """Mark every test whose fixtures reach pytest's temp folder `tmp`: only these can
    depend on the length of `--basetemp` (.ci/run runs them again under a short one)."""
    for item in items:
        if TEMP_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tmp)


@pytest.fixture(scope="session")
def critic_zoo(tmp_path_factory, tiny_zoo, cartpole_dataset):
    """`tiny_zoo` (copied) with offline RL: a briefly trained critic in ``cartpole-dt``
    and ``cartpole-iql`` with a card (tests/critic_zoo.py)."""
    import shutil

    from critic_zoo import add_offline

    root = tmp_path_factory.mktemp("critic-zoo") / "zoo"
    shutil.copytree(tiny_zoo, root)
    from dt_playground.atomic import write_json_atomic
    from dt_playground.zoo.cards import card_evaluation

    add_offline(
        root,
        str(cartpole_dataset[0]),
        "CartPole-v1",
        "cartpole-dt",
        steps=200,
        card_seeds=2,
        hidden=32,
    )
    bc = card_evaluation(root / "cartpole-bc", n_seeds=2, max_steps=100)
    write_json_atomic(root / "cartpole-bc" / "card.json", bc)
    dt = card_evaluation(
        root / "cartpole-dt", {"bc": bc["top_target_mean"]}, n_seeds=2, n_targets=3, max_steps=100
    )
    write_json_atomic(root / "cartpole-dt" / "card.json", dt)
    return root
