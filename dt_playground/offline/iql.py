"""Implicit Q-Learning (Kostrikov, Nair and Levine, 2021): the config and the torch maths.

IQL never asks its Q for an action the data did not take. Three losses, as d3rlpy's
``IQLImpl`` and the paper's reference code:

- value: expectile regression of V(s) on min(Q1, Q2)(s, a) of the *target* twins,
  ``|tau - 1(u < 0)| u^2`` with ``u = Q - V`` (tau > 0.5 leans to the upper expectile,
  the best actions the data shows);
- Q: ``(Q_i(s, a) - (r + gamma (1 - terminal) V(s')))^2`` for both twins;
- actor: advantage-weighted regression on the dataset's actions,
  ``-exp(beta (Q - V)).clamp(max=100) * log pi(a | s)``.

Continuous actions: a Gaussian with a tanh mean and a state-independent log-std, as the
paper's code (d3rlpy's too). The dataset's actions lie in [-1, 1] after the action
scale, so their log-probability is finite everywhere, which a tanh-squashed Gaussian's is
not at the bounds (atanh(+-1)); acting takes the mean. Discrete actions: Q over actions,
a softmax policy, acting by argmax.

Beside IQL's nets the module holds the *return net* G(s, a, t): a regression of the
undiscounted return-to-go the data went on to collect after (s, a) at step t. IQL's Q is
discounted (gamma 0.99 sees about 100 steps ahead), a DT's return-to-go is not; the
checked DT matches targets with G and picks its `best` with Q (`offline/critic.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_WEIGHT = 100.0  # the advantage weight's clip (paper and d3rlpy)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass
class IQLConfig:
    """IQL's hyper-parameters and sizes (config.json's ``iql``)."""

    state_dim: int = 1
    act_dim: int = 1  # the number of actions when discrete
    discrete: bool = False
    hidden: int = 256  # every net: two hidden layers this wide
    gamma: float = 0.99
    expectile: float = 0.7  # tau of the value loss
    beta: float = 3.0  # inverse temperature of the advantage weights
    lr: float = 3e-4
    target_tau: float = 0.005  # Polyak rate of the target Q twins
    batch_size: int = 256
    steps: int = 30000
    return_steps: int = 10000  # steps of the return net (the critic's G), from step 0
    reward_scale: float = 1.0  # rewards are multiplied by this before the Q loss
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


class TwinQ(nn.Module):
    """Two Q nets; Q(s, a) (B, 2). Discrete: each net maps s to one value per action."""

    def __init__(self, cfg: IQLConfig):
        super().__init__()
        self.discrete = cfg.discrete
        n_in = cfg.state_dim + (0 if cfg.discrete else cfg.act_dim)
        n_out = cfg.act_dim if cfg.discrete else 1
        self.q1, self.q2 = mlp(n_in, n_out, cfg.hidden), mlp(n_in, n_out, cfg.hidden)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``a``: one-hot (B, A) when discrete, scaled actions (B, A) otherwise."""
        if self.discrete:
            return torch.stack([(q(s) * a).sum(-1) for q in (self.q1, self.q2)], -1)
        x = torch.cat([s, a], -1)
        return torch.cat([self.q1(x), self.q2(x)], -1)


class IQL(nn.Module):
    """IQL's nets: twin Q (and its target copy), V, the actor, and the return net G."""

    def __init__(self, cfg: IQLConfig):
        super().__init__()
        self.cfg = cfg
        A, S, h = cfg.act_dim, cfg.state_dim, cfg.hidden
        self.q = TwinQ(cfg)
        self.q_target = TwinQ(cfg).requires_grad_(False)
        self.q_target.load_state_dict(self.q.state_dict())
        self.v = mlp(S, 1, h)
        self.actor = mlp(S, A, h)
        self.log_std = nn.Parameter(torch.zeros(A))  # unused (kept at 0) when discrete
        self.ret = mlp(S + A + 1, 1, h)  # G(s, a, t / max_ep_len)

    # ------------------------------------------------------------- acting
    def act(self, s: torch.Tensor) -> torch.Tensor:
        """The greedy action: argmax logits (B,) when discrete, the tanh mean (B, A)."""
        out = self.actor(s)
        return out.argmax(-1) if self.cfg.discrete else torch.tanh(out)

    def q_value(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2)(s, a) (B,), in scaled-reward units."""
        return self.q(s, a).min(-1).values

    def return_value(self, s: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """G(s, a, t) (B,): the undiscounted return-to-go, over the DT's return scale."""
        return self.ret(torch.cat([s, a, t[:, None]], -1)).squeeze(-1)

    # ------------------------------------------------------------- losses
    def losses(self, b: dict[str, torch.Tensor], with_return: bool = True) -> dict:
        """IQL's three losses (and G's) on a batch of transitions: ``s``, ``a``, ``r``,
        ``s2``, ``terminal``, ``t`` (step over max_ep_len), ``rtg`` (over return scale)."""
        cfg = self.cfg
        s, a = b["s"], b["a"]
        with torch.no_grad():
            q_t = self.q_target(s, a).min(-1).values
        v = self.v(s).squeeze(-1)
        u = q_t - v
        weight = torch.abs(cfg.expectile - (u < 0).float())
        value_loss = (weight * u.pow(2)).mean()
        with torch.no_grad():
            target = b["r"] + cfg.gamma * (1.0 - b["terminal"]) * self.v(b["s2"]).squeeze(-1)
        q = self.q(s, a)
        q_loss = (q - target[:, None]).pow(2).sum(-1).mean()
        with torch.no_grad():
            w = torch.exp(cfg.beta * (q_t - v.detach())).clamp(max=MAX_WEIGHT)
        out = self.actor(s)
        if cfg.discrete:
            logp = (F.log_softmax(out, -1) * a).sum(-1)
        else:
            log_std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
            logp = torch.distributions.Normal(torch.tanh(out), log_std.exp()).log_prob(a).sum(-1)
        actor_loss = -(w * logp).mean()
        res = {"value": value_loss, "q": q_loss, "actor": actor_loss}
        if with_return:
            res["return"] = F.mse_loss(self.return_value(s, a, b["t"]), b["rtg"])
        return res

    @torch.no_grad()
    def update_target(self) -> None:
        for p, tp in zip(self.q.parameters(), self.q_target.parameters()):
            tp.lerp_(p, self.cfg.target_tau)


# The nets each kind of folder ships (the target twins never: acting and checking need
# only the online ones). An IQL checkpoint plays, so it needs its actor alone; a DT's
# critic scores actions (Q, V, G) and may offer the actor's action as a candidate.
PARTS = ("q", "v", "actor", "log_std", "ret")
PARTS_OF = {"iql": ("actor", "log_std"), "critic": PARTS}


def shipped_state(model: IQL, parts: tuple[str, ...] = PARTS) -> dict[str, torch.Tensor]:
    """The tensors to save: ``parts`` of the model, contiguous, on the CPU."""
    return {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if k.split(".")[0] in parts
    }


def expected_shapes(cfg: IQLConfig, parts: tuple[str, ...] = PARTS) -> dict[str, tuple]:
    """Name -> shape of the saved tensors of ``parts`` for ``cfg`` (on ``meta``: no memory)."""
    with torch.device("meta"):
        model = IQL(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k.split(".")[0] in parts}
