"""The re-prompt box's example rule, run as the page runs it (JavaScript, in node)."""

import json
import shutil
import subprocess

import pytest

from dt_playground.app.widgets import _TAKE_EXAMPLE, tagged_example

NODE = shutil.which("node") or shutil.which("nodejs")


def _take(example: str, box: str, shown: str, *picked):
    args = json.dumps([example, box, shown, *picked])
    script = f"const f = {_TAKE_EXAMPLE};\nconsole.log(JSON.stringify(f(...{args})));"
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node (CI installs nodejs for pyright)")
def test_an_example_lands_only_untouched_and_made_for_what_is_picked():
    cp = tagged_example(["CartPole-v1", "cartpole-dt"], "0:500,166:12.0")
    picked = ("CartPole-v1", "cartpole-dt")
    # untouched box, made for what is picked: taken
    assert _take(cp, "0:317,300:-94.3", "0:317,300:-94.3", *picked) == ["0:500,166:12.0"] * 2
    # the visitor typed: kept
    assert _take(cp, "0:3000,abc", "0:500,166:12.0", *picked) == ["0:3000,abc", "0:500,166:12.0"]
    # made for the env picked before (a slower, older request landing last): dropped
    ll = tagged_example(["LunarLander-v3", "lunarlander-dt"], "0:317,300:-94.3")
    assert _take(ll, "0:500,166:12.0", "0:500,166:12.0", *picked) == ["0:500,166:12.0"] * 2
    # not an example at all: nothing changes
    assert _take("0:1,2:3", "a", "a", *picked) == ["a", "a"]
