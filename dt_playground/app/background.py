"""The app's background work: sweeps, comparisons, in-app training and the dataset view.
Mixed into `app.ui.Handlers`, which provides ``store``, ``pool``, ``admission`` and
``_checkpoint``."""

import gradio as gr

from dt_playground.app import card_views, formatting
from dt_playground.app.boundary import (
    boundary,
    progress_steps,
    session_key,
)
from dt_playground.checkpoints import layout
from dt_playground.errors import PlaygroundError
from dt_playground.media.plots import figures, inspect
from dt_playground.serve.admission import Admission
from dt_playground.serve.jobs import TrainJob, TrainRequest
from dt_playground.serve.sessions import SessionStore
from dt_playground.serve.workers import CheckpointRef, WorkerPool


class Background:
    """The handlers of the Sweep, Compare, Train and Dataset tabs."""

    admission: Admission
    pool: WorkerPool
    store: SessionStore
    _selected: dict[str, tuple[str, str]]

    def _checkpoint(self, sid, value, env_id, check=False):  # pragma: no cover - Handlers'
        raise NotImplementedError

    @boundary
    def sweep(
        self,
        env_id: str,
        checkpoint: str,
        n_targets: float,
        n_seeds: float,
        seed: float,
        sid: str | None = None,
        check: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Achieved vs requested return over targets x seeds, batched."""
        with self.admission.background_job(session_key(request), "sweep"):
            from dt_playground.rollout.sweep import sweep_targets, sweep_with_references

            ck = self._checkpoint(sid, checkpoint, env_id, check := check is True)
            targets = sweep_targets(ck, n_targets)
            res, refs = self.pool.run(
                "background",
                sweep_with_references,
                CheckpointRef.of(ck),
                targets,
                n_seeds,
                seed,
                progress=progress_steps(progress, "sweeping"),
                check=check,
            )
            card = card_views.card_of(env_id, checkpoint, self.store.owned(sid))
            fig = figures.sweep_figure(res["rows"], ck.dataset.as_dict(), refs, card)
            return (
                fig,
                formatting.sweep_run_markdown(formatting.sweep_markdown(res), card),
                {**res, "references": refs},
            )

    @boundary
    def compare(
        self,
        env_id: str,
        n_seeds: float,
        seed: float,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Every pretrained checkpoint of the env on the same seeds; progress advances
        per checkpoint; the same figure as on arrival."""
        with self.admission.background_job(session_key(request), "comparison"):
            from dt_playground.rollout.sweep import compare_report

            progress(0, desc="playing every checkpoint")
            results, notes = self.pool.run(
                "background",
                compare_report,
                env_id,
                n_seeds,
                seed,
                progress=progress_steps(progress, "checkpoints"),
            )
            return card_views.compare_run_view(env_id, results, notes)

    @boundary
    def train_model(
        self,
        env_id: str,
        algo: str,
        steps: float,
        context_len: float,
        lr: float,
        sid: str | None,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Collect (first use) and train in the background, streaming the loss curve;
        the finished checkpoint is listed and selected."""
        request_ = TrainRequest.parse(env_id, algo, steps, context_len, lr)
        session = self.store.get_or_new(sid)
        if session.job is not None and not session.job.done:
            raise PlaygroundError("This session is already training: cancel it first.")
        # The last output is the new checkpoint's id (`show_own` then selects it): a failure
        # here marks no input of the page.
        with self.admission.background_job(session_key(request), "training job"):
            cid, out = self.store.reserve(session, "trained")
            job = session.job = TrainJob(request_, out).start()
            for j in job.watch():
                progress(len(j.steps) / request_.steps, desc=j.status())
                yield (inspect.loss_figure(j.curve()), j.status(), session.id, gr.skip())
            if job.error:
                self.store.tidy(session)
                raise PlaygroundError(job.status())
            if out.is_dir():
                self.store.adopt(session, cid, out)
            choices = layout.choices(env_id, self.store.owned(session.id))
            yield (
                inspect.loss_figure(job.curve()),
                job.status().replace(out.name, cid),
                session.id,
                gr.Dropdown(choices=choices, value=cid),
            )

    @boundary
    def show_own(self, cid: str | None, sid: str | None):
        """Select the session's checkpoint ``cid`` (an upload or a trained one): its env,
        that env's list and the checkpoint, in one update."""
        path = self.store.owned(sid).get(cid) if cid else None
        info = layout.peek_checkpoint(path) if path is not None else None
        if info is None or sid is None or cid is None:
            return gr.skip(), gr.skip()
        # The env's change event that follows may carry the old env's checkpoint (the
        # page applies the two updates one after the other): it selects this one.
        self._selected[sid] = (info.env_id, cid)
        choices = layout.choices(info.env_id, self.store.owned(sid))
        return gr.Dropdown(value=info.env_id), gr.Dropdown(choices=choices, value=cid)

    @boundary
    def cancel_training(self, sid: str | None) -> str:
        """Stop this session's training job (the checkpoint so far is kept)."""
        session = self.store.get(sid)
        if session is None or session.job is None or session.job.done:
            return "No training running."
        session.job.stop.set()
        return "Cancelling…"

    def training_status(self, env_id: str, sid: str | None) -> str:
        """The Train tab's status line belongs to the env of the session's job."""
        session = self.store.get(sid)
        job = session.job if session is not None else None
        if job is None or job.request.env_id != env_id:
            return ""
        return job.status()

    @boundary
    def dataset_view(self, env_id: str, checkpoint: str, sid: str | None = None):
        """The return histogram, lengths and quality levels behind a checkpoint."""
        return card_views.dataset_view(env_id, checkpoint, self.store.owned(sid))
