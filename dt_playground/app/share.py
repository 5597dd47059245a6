"""Links that replay: the page's address carries env, checkpoint, target (or ``best``), seed,
schedule and whether the critic checked the play (``check=1``); opening such a link
selects them and plays once. A link without ``check`` plays unchecked, as every link did
before checking existed, whatever the box's default for that checkpoint.

The address is written in the page (`URL_AFTER_PLAY`, after each play that succeeded) and
read here, on the server (`Share.from_query`), where every value is checked like any other
request: a bad one is dropped with a toast that names it, and its default is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import gradio as gr

from dt_playground.app import card_views, critic_views
from dt_playground.app.boundary import LOG, boundary, rollout_lib, session_key
from dt_playground.app.checks import seed_of
from dt_playground.checkpoints import layout
from dt_playground.data.summary import target_range
from dt_playground.envs.registry import get_spec
from dt_playground.envs.seeds import APP_SEED
from dt_playground.errors import PlaygroundError
from dt_playground.serve.admission import Admission
from dt_playground.serve.sessions import SessionStore

KEYS = ("env", "checkpoint", "target", "seed", "schedule", "check")
CHECK_WORDS = {"1": True, "true": True, "0": False, "false": False}
MAX_LINKS_KEPT = 1000  # pages opened from a link whose choice the pickers still honour

# (env, checkpoint, target, seed, best, check) -> the address bar, after a play; after a
# schedule's play: (env, checkpoint, target, seed, best, schedule) (schedules play unchecked).
URL_AFTER_PLAY = """(env, ckpt, target, seed, best, extra) => {
  const q = new URLSearchParams();
  q.set('env', env); if (ckpt) q.set('checkpoint', ckpt);
  if (typeof extra === 'string') q.set('schedule', extra);
  else q.set('target', best === true ? 'best' : String(target));
  q.set('seed', String(seed));
  if (extra === true) q.set('check', '1');
  history.replaceState(null, '', location.pathname + '?' + q.toString());
  return [];
}"""

# (query) -> the address bar: a link's choice as the page shows it (dropped values gone).
SET_QUERY = """(q) => { if (q) history.replaceState(null, '', location.pathname + '?' + q);
  return []; }"""

# The link box shows (and the clipboard gets) the address of what was last played.
COPY_LINK = """() => {
  const url = location.href;
  try { navigator.clipboard.writeText(url); } catch (e) { /* the box still shows it */ }
  return {__type__: 'update', value: url, visible: true};
}"""


def _short(value) -> str:
    return repr(str(value)[:30])


class SharedChoice:
    """What a link asked for, once checked: the values the page should show."""

    def __init__(
        self,
        env: str,
        checkpoint: str,
        target,
        seed: int,
        schedule: str | None,
        check: bool = False,
    ):
        self.env, self.checkpoint, self.target = env, checkpoint, target
        self.seed, self.schedule, self.check = seed, schedule, check

    def query(self) -> str:
        """The address's query that asks for this choice."""
        asked = (
            {"schedule": self.schedule}
            if self.schedule is not None
            else {"target": self.target if self.target == "best" else f"{self.target:.10g}"}
        )
        checked = {"check": 1} if self.check else {}
        return urlencode(
            {"env": self.env, "checkpoint": self.checkpoint, **asked, "seed": self.seed, **checked}
        )


def read_query(params, owned=None) -> tuple[SharedChoice | None, list[str]]:
    """The link's choice (None without any of `KEYS`) and a sentence per dropped value."""
    q = {k: params.get(k) for k in KEYS if params.get(k) is not None}
    if not q:
        return None, []
    dropped: list[str] = []
    default_env, _ = layout.arrival_choices()
    env = q.get("env", default_env)
    if env not in layout.envs_with_checkpoints():
        dropped.append(f"env={_short(env)} (no such environment here)")
        env = default_env
    values = [v for _, v in layout.choices(env, owned)]
    ckpt = q.get("checkpoint", values[0] if values else None)
    if ckpt not in values:
        dropped.append(f"checkpoint={_short(ckpt)} (not a checkpoint of {env})")
        ckpt = values[0] if values else None
    if ckpt is None:
        return None, dropped + [f"everything: {env} has no checkpoint"]
    r = target_range(card_views.dataset_of(env, ckpt, owned), get_spec(env).target_presets)
    target: float | str = r.value
    if "target" in q:
        target = _target(q["target"], env, ckpt, r, owned, dropped)
    seed = APP_SEED
    if "seed" in q:
        try:
            seed = seed_of(q["seed"])
        except PlaygroundError as exc:
            dropped.append(f"seed={_short(q['seed'])} ({exc})")
    schedule = q.get("schedule")
    if schedule is not None:
        try:
            rollout_lib("schedules").parse_schedule(schedule)
        except PlaygroundError as exc:
            dropped.append(f"schedule={_short(schedule)} ({exc})")
            schedule = None
    check = _check(q.get("check"), env, ckpt, schedule, owned, dropped)
    return SharedChoice(env, ckpt, target, seed, schedule, check), dropped


def _check(text, env, ckpt, schedule, owned, dropped: list[str]) -> bool:
    """The link's ``check``: 1/true or 0/false, where the checkpoint has a critic and the
    link plays a target (a schedule plays unchecked); anything else is dropped."""
    if text is None:
        return False
    value = CHECK_WORDS.get(str(text).strip().lower())
    if value is None:
        dropped.append(f"check={_short(text)} (not 1 or 0)")
        return False
    if value and schedule is not None:
        dropped.append("check=1 (a schedule plays unchecked)")
        return False
    info = critic_views.info_of(env, ckpt, owned)  # (its folder says; nothing is loaded)
    if value and not (info is not None and info.has_critic):
        dropped.append(f"check=1 ({ckpt} has no critic)")
        return False
    return value


def _target(text: str, env, ckpt, r, owned, dropped: list[str]) -> float | str:
    """The link's target: ``best`` where the checkpoint offers it, or a number inside the
    slider's range; anything else is dropped (the default is kept)."""
    if text.strip().lower() == "best":
        info = layout.peek_checkpoint(layout.locate(ckpt, env, owned))
        if info is not None and info.offers_best:
            return "best"
        dropped.append(f"target='best' ({ckpt} has no return model)")
        return r.value
    try:
        value = float(text)
    except ValueError:
        dropped.append(f"target={_short(text)} (not a number)")
        return r.value
    if not r.minimum <= value <= r.maximum:
        dropped.append(
            f"target={_short(text)} (outside {r.minimum}…{r.maximum}, the slider's "
            "range for this checkpoint)"
        )
        return r.value
    return value


class Share:
    """The link's handlers, mixed into `ui.Handlers` (which provides ``_play``, ``store``,
    ``admission``)."""

    _shared: dict
    admission: Admission
    store: SessionStore
    play_schedule: Callable
    _play: Callable

    def shared(self, request) -> SharedChoice | None:
        """The checked choice of this page's link, if it had one."""
        return self._shared.get(session_key(request))

    @boundary
    def from_query(self, sid=None, request: gr.Request | None = None, progress=gr.Progress()):
        """Select what the link names, then play it once (its schedule, if it has one).
        Yields the controls (env, checkpoint, target, seed, best, schedule), the link's
        query as checked, the Play tab's "check with critic" box, and the Play tab's
        results (video, plots, summary, details)."""
        skip = (gr.skip(),) * 7
        params = getattr(request, "query_params", None) or {}
        choice, dropped = read_query(params, self.store.owned(sid))
        for line in dropped:
            LOG.info("link value dropped: %s", line[:120])
            gr.Warning(f"The link's {line} was ignored: the default is shown.")
        if choice is None:
            yield (gr.skip(),) * 6 + skip
            return
        if len(self._shared) >= MAX_LINKS_KEPT:  # the oldest page's link goes first
            self._shared.pop(next(iter(self._shared)))
        self._shared[session_key(request)] = choice
        best = choice.target == "best"
        r = target_range(
            card_views.dataset_of(choice.env, choice.checkpoint),
            get_spec(choice.env).target_presets,
        )
        target = gr.Slider(
            minimum=r.minimum,
            maximum=r.maximum,
            value=r.value if best else choice.target,
            interactive=not best,
        )
        yield (
            gr.Dropdown(value=choice.env),
            gr.Dropdown(
                choices=layout.choices(choice.env, self.store.owned(sid)), value=choice.checkpoint
            ),
            target,
            choice.seed,
            gr.Checkbox(value=True, visible=True) if best else gr.skip(),
            choice.schedule if choice.schedule is not None else gr.skip(),
            choice.query(),
            gr.Checkbox(value=choice.check),
            *skip[2:],
        )
        if choice.schedule is not None:  # (it takes its own admission turn)
            for out in self.play_schedule(
                choice.env, choice.checkpoint, choice.schedule, choice.seed, sid, request, progress
            ):
                yield (gr.skip(),) * 8 + tuple(out)
            return
        with self.admission.interactive(session_key(request), "play"):
            for out in self._play(
                choice.env,
                choice.checkpoint,
                choice.target,
                choice.seed,
                False,
                best,
                sid,
                progress,
                check=choice.check,
            ):
                yield (gr.skip(),) * 8 + tuple(out)
