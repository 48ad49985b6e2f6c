"""Trainer: Adam then L-BFGS on a PINN loss, with resampling, adaptive weights, progress,
resumable checkpoints and an accuracy log."""

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from kd_edge.training.config import can_continue, changed_settings, to_dict, training_dtype
from kd_edge.training.losses import condition_losses, pde_loss
from kd_edge.training.parallel import current_group

MAX_LBFGS_FAILURES = 3  # diverged L-BFGS chunks in a row before training stops where it is
LBFGS_CHUNK = 25  # L-BFGS iterations between logs and checkpoints; up to 5x as many loss
# evaluations are allowed per chunk, since a strong-Wolfe line search takes several


def _crossed(position: int, advance: int, every: int) -> bool:
    """Whether moving `advance` steps to `position` passed a multiple of `every` (0: never)."""
    return bool(every) and position // every != (position - advance) // every


def _grad_norm(loss, params, group) -> float:
    """|gradient| of the global loss whose share on this rank is `loss`."""
    grads = group.sum_each(list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)))
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))


class Trainer:
    """Trains `model` on problem's physics loss plus an optional extra term.

    extra_loss(progress in [0, 1]) -> (tensor, {name: float}) adds e.g. the distillation term;
    if it has resample(), that is called with every fresh batch (each Adam step, each L-BFGS restart).
    evaluate(model) -> {name: float} is logged with the history (monitoring only).
    checkpoint: a file to resume from and save to; None trains without checkpoints.
    device: where to train (train_pinn returns the model on the CPU). Under torch.distributed
    every rank trains on its shard of each point set and takes the global step (see parallel);
    rank 0 alone shows progress, evaluates and writes the checkpoint, which every rank resumes from.
    """

    def __init__(self, problem, model, config, extra_loss=None, evaluate=None, checkpoint=None,
                 description="train", progress=True, device="cpu"):
        self.problem, self.model, self.config = problem, model, config
        self.dtype = training_dtype(config.precision)
        self.device = torch.device(device)
        self.group = current_group()
        model.to(self.device, self.dtype)  # train_pinn returns it in float32 on the CPU again
        self.extra_loss, self.evaluate = extra_loss, evaluate
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.description, self.show_progress = description, progress and self.group.is_main
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.rng = np.random.default_rng(config.seed)
        # conditions a hard-constrained network meets by construction are not trained (their points
        # are still drawn, so the random stream is the same either way)
        self.exact = problem.exact_conditions(config.network) if config.network.hard_constraints else ()
        for name in ("causal_chunks", "time_weight_rate"):
            if getattr(config, name) > 0 and "t" not in problem.inputs:
                raise ValueError(f"{name} weights the residual in time, but {problem.name} has no input 't' "
                                 f"(inputs: {', '.join(problem.inputs)}); set it to 0")
        self.weights = [config.condition_weight] * sum(c.name not in self.exact for c in problem.conditions())
        self.adam = torch.optim.Adam(self.params, lr=config.adam_lr)
        self.lbfgs = None
        self.step, self.history = 0, []
        self.seconds, self.started = 0.0, None  # training time of earlier runs of a resumed checkpoint; this run's start
        self.total_steps = config.adam_steps + config.lbfgs_steps
        self.collocation = self.condition_points = None  # the global sets: the same on every rank

    # --- data ------------------------------------------------------------------
    def resample(self):
        c = self.config
        n_adaptive = int(c.adaptive_fraction * c.n_collocation) if self.collocation is not None else 0
        fresh = self.problem.sample(c.n_collocation - n_adaptive, self.rng, c.sampler)
        if n_adaptive:
            # the residual on this rank's share of the candidates; the largest over all of them
            candidates = self.tensor(self.problem.sample(4 * n_adaptive, self.rng, "uniform"))
            mine = self.group.shard(candidates)
            squared = self.group.gather(sum(r.detach().pow(2) for r in self.problem.residual(self.model, mine)))
            worst = candidates[torch.topk(squared, n_adaptive).indices].cpu().numpy()
            fresh = np.concatenate([fresh, worst])
        self.collocation = self.tensor(fresh)
        self.condition_points = [self.tensor(cond.sample(c.n_condition, self.rng, c.sampler))
                                 for cond in self.problem.conditions()]
        self.resample_extra()

    def tensor(self, points: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(points).to(self.device, self.dtype)

    def resample_extra(self):
        if hasattr(self.extra_loss, "resample"):
            self.extra_loss.resample()

    # --- loss --------------------------------------------------------------------
    def terms(self):
        """This rank's shares of the PDE loss and of each condition's loss."""
        c, g = self.config, self.group
        pde = pde_loss(self.problem, self.model, g.shard(self.collocation), c.causal_chunks, c.causal_epsilon,
                       c.time_weight_rate, g)
        conditions = condition_losses(self.problem, self.model, [g.shard(p) for p in self.condition_points],
                                      self.exact, g)
        return pde, conditions

    def loss(self):
        """This rank's share of the loss, and of its parts (see evaluate_loss for the global ones)."""
        pde, conditions = self.terms()
        total = pde + sum(w * l for w, l in zip(self.weights, conditions))
        parts = {"pde": pde.item(), "conditions": sum(c.item() for c in conditions)}
        if self.extra_loss is not None:
            extra, extra_parts = self.extra_loss(self.step / max(1, self.total_steps))
            total = total + extra
            parts.update(extra_parts)
        return total, parts

    def evaluate_loss(self, backward: bool):
        """The global loss and its parts (floats); with backward, each parameter's .grad is the
        global gradient (one all-reduce across ranks)."""
        total, parts = self.loss()
        if backward:
            total.backward()
        return self.group.reduce_step(self.params if backward else [], total.detach(), parts)

    def update_weights(self):
        """Gradient-norm balancing (Wang, Teng & Perdikaris 2021): each condition's weight
        moves towards |grad PDE loss| / |grad condition loss|."""
        pde, conditions = self.terms()
        g_pde = _grad_norm(pde, self.params, self.group)
        for i, loss in enumerate(conditions):
            target = g_pde / max(_grad_norm(loss, self.params, self.group), 1e-12)
            self.weights[i] = float(np.clip(0.9 * self.weights[i] + 0.1 * target, 1.0, 1e4))

    def warm_start(self, step: int, history: list):
        """Continue a finished run from its weights (already in the model): fresh points and
        L-BFGS history, the step count and log carried on. A checkpoint, if any, wins."""
        self.step, self.history = step, list(history)
        self.rng = np.random.default_rng([self.config.seed, step])  # not the first run's points again

    # --- loop --------------------------------------------------------------------
    def run(self):
        c = self.config
        if self.checkpoint and self.checkpoint.exists():
            self.load()
            if self.group.is_main:
                tqdm.write(f"{self.description}: resuming {self.checkpoint} at step {self.step} of {self.total_steps}")
        if self.collocation is None:
            self.resample()
        self.group.broadcast(self.params)  # every rank starts from rank 0's weights
        self.started = time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=self.description, disable=not self.show_progress,
                   mininterval=5, dynamic_ncols=True)
        decay = (c.adam_lr_final / c.adam_lr) ** (1 / max(1, c.adam_steps))
        while self.step < c.adam_steps:
            if c.resample_every and self.step and self.step % c.resample_every == 0:
                self.resample()
            if c.adaptive_weights and self.step % c.weight_update_every == 0:
                self.update_weights()
            for group in self.adam.param_groups:
                group["lr"] = c.adam_lr * decay**self.step
            self.resample_extra()
            self.adam.zero_grad()
            total, parts = self.evaluate_loss(backward=True)
            self.adam.step()
            self.step += 1
            self.after_step(bar, total, parts, "adam")
        if c.lbfgs_steps and self.step < self.total_steps:
            self.run_lbfgs(bar)
        bar.close()
        self.save()
        return self.model

    def make_lbfgs(self):
        return torch.optim.LBFGS(self.params, lr=1.0, max_iter=LBFGS_CHUNK, max_eval=5 * LBFGS_CHUNK, history_size=50,
                                 line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)

    def run_lbfgs(self, bar):
        c = self.config
        if self.lbfgs is None:
            self.lbfgs = self.make_lbfgs()
        last = {}

        def closure():
            self.lbfgs.zero_grad()
            total, parts = self.evaluate_loss(backward=True)
            last.update(parts, total=total)
            return torch.tensor(total)

        state = lambda key: self.lbfgs.state[self.lbfgs._params[0]].get(key, 0)  # noqa: E731
        failures = 0
        while self.step < self.total_steps:
            good = [p.detach().clone() for p in self.params]
            chunk = min(LBFGS_CHUNK, self.total_steps - self.step)
            self.lbfgs.param_groups[0].update(max_iter=chunk, max_eval=5 * chunk)
            iterations, evaluations = state("n_iter"), state("func_evals")
            self.lbfgs.step(closure)
            done, used = state("n_iter") - iterations, state("func_evals") - evaluations
            self.step += max(done, 1)
            if not math.isfinite(last.get("total", math.nan)) or any(not torch.isfinite(p).all() for p in self.params):
                # a diverged line search: back to the last finite weights, fresh points, new history
                with torch.no_grad():
                    for p, g in zip(self.params, good):
                        p.copy_(g)
                last.clear()
                bar.update(max(done, 1))
                failures += 1
                if failures > MAX_LBFGS_FAILURES:
                    break
                self.resample()
                self.lbfgs = self.make_lbfgs()
                continue
            failures = 0
            total = last.pop("total")
            stalled = done < chunk and used < 5 * chunk
            if stalled or _crossed(self.step - c.adam_steps, max(done, 1), c.lbfgs_resample_every):
                # Stalled on its tolerances (float32 losses stop changing), or due for fresh points:
                # restart on a fresh collocation set with an empty history while the budget lasts
                # (before the checkpoint, so a resumed run continues as an uninterrupted one would).
                self.resample()
                self.lbfgs = self.make_lbfgs()
            self.after_step(bar, total, dict(last), "lbfgs", advance=max(done, 1))
        if self.history and self.history[-1]["step"] != self.step:  # record where L-BFGS stopped
            total, parts = self.evaluate_loss(backward=False)
            self.record(bar, total, parts, "lbfgs", evaluate=True)
        self.step = max(self.step, self.total_steps)

    def after_step(self, bar, total, parts, stage, advance=1):
        c = self.config
        bar.update(advance)
        crossed = lambda every: _crossed(self.step, advance, every)  # noqa: E731
        if crossed(c.log_every) or self.step >= self.total_steps:
            self.record(bar, total, parts, stage, evaluate=crossed(c.checkpoint_every) or self.step >= self.total_steps)
        if self.checkpoint and crossed(c.checkpoint_every):
            self.save()

    def record(self, bar, total, parts, stage, evaluate):
        entry = {"step": self.step, "stage": stage, "loss": total, **parts}
        if evaluate and self.evaluate is not None and self.group.is_main:
            entry.update(self.evaluate(self.model))
        self.history.append(entry)
        bar.set_postfix({k: f"{v:.2e}" for k, v in entry.items() if k in ("loss", "rel_l2")}, refresh=False)

    # --- checkpoints -------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds spent training this model, over every run of its checkpoint."""
        return self.seconds + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def state(self):
        return {
            "seconds": self.elapsed(),
            "config": to_dict(self.config), "step": self.step, "model": self.model.state_dict(),
            "adam": self.adam.state_dict(), "lbfgs": self.lbfgs.state_dict() if self.lbfgs else None,
            "weights": self.weights, "rng": self.rng.bit_generator.state, "history": self.history,
            "collocation": self.collocation, "condition_points": self.condition_points,
            "extra": self.extra_loss.state() if hasattr(self.extra_loss, "state") else None,
        }

    def save(self):
        if not self.checkpoint or not self.group.is_main:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, self.checkpoint)

    def load(self):
        state = torch.load(self.checkpoint, weights_only=False, map_location=self.device)
        old, new = state["config"], to_dict(self.config)
        changed = changed_settings(old, new)
        if can_continue(old, new) and not self.extra_loss:
            # A larger L-BFGS budget for a teacher continues the run where it stopped. (Distillation
            # schedules depend on the total budget, so students start again.)
            if self.group.is_main:
                tqdm.write(f"{self.checkpoint}: L-BFGS budget raised from {old['lbfgs_steps']} to "
                           f"{new['lbfgs_steps']} steps; continuing from step {state['step']}")
        elif changed:
            raise ValueError(f"{self.checkpoint} was made with a different config (changed: {', '.join(changed)}); "
                             f"delete it to start again")
        self.model.load_state_dict(state["model"])
        self.adam.load_state_dict(state["adam"])
        if state["lbfgs"] is not None:
            self.lbfgs = self.make_lbfgs()
            self.lbfgs.load_state_dict(state["lbfgs"])
        self.step, self.weights, self.history = state["step"], state["weights"], state["history"]
        self.seconds = state.get("seconds", 0.0)  # checkpoints from before it was kept lack it
        self.rng.bit_generator.state = state["rng"]
        # in this run's dtype: a float32 run may continue in float64
        self.collocation = state["collocation"].to(self.dtype)
        self.condition_points = [p.to(self.dtype) for p in state["condition_points"]]
        if state.get("extra") is not None:  # checkpoints from before distillation state was saved lack it
            self.extra_loss.load_state(state["extra"])
