"""Started by test_distributed under torchrun: every loss term as each rank's share of the
global one, summed over ranks, against the one-process value on the same global points
(float64). Rank 0 writes {term: largest relative gap, value or gradient} to the file argv[1], and
the gloo threads it still runs after leave() (none: the group is gone, not left to shutdown)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import kd_edge.problems as problems
from kd_edge.training import DistillConfig, NetworkConfig, build_network
from kd_edge.training.distill import DistillationTerm
from kd_edge.training.losses import condition_losses, pde_loss
from kd_edge.training.parallel import Group, current_group, join, leave
from kd_edge.training.trainer import _grad_norm

join(timeout_s=60)
group, one = current_group(), Group()
problem = problems.get("navier_stokes_taylor_green")  # time (causal, time weights) and a pressure gauge
torch.manual_seed(0)
student = build_network(problem, NetworkConfig(width=8, depth=2)).double()
teacher = build_network(problem, NetworkConfig(width=12, depth=2)).double()
params = list(student.parameters())
torch.optim.Adam(params)  # imports torch._dynamo and with it torch.distributed.nn, after join() as in training
rng = np.random.default_rng(0)
points = torch.from_numpy(problem.sample(101, rng, "uniform"))  # 101: shards of unequal size
conditions = [torch.from_numpy(c.sample(37, rng, "uniform")) for c in problem.conditions()]
config = DistillConfig(network=NetworkConfig(width=8, depth=2), n_distill=101, precision="float64",
                       match_derivatives=True)
distributed_term = DistillationTerm(problem, teacher, student, config)
one_term = DistillationTerm(problem, teacher, student, config)
one_term.group = one

terms = {
    "pde": lambda g: pde_loss(problem, student, g.shard(points), group=g),
    "pde causal+time": lambda g: pde_loss(problem, student, g.shard(points), causal_chunks=4, causal_epsilon=2.0,
                                          time_weight_rate=1.5, group=g),
    "conditions": lambda g: sum(condition_losses(problem, student, [g.shard(c) for c in conditions], group=g)),
    "distillation with gauge and derivatives": lambda g: (distributed_term if g is group else one_term)(0.5)[0],
}


def global_value_and_gradient(term, g):
    student.zero_grad()
    share = term(g)
    share.backward()
    value, _ = g.reduce_step(params, share.detach(), {})
    return value, torch.cat([p.grad.reshape(-1) for p in params])


gaps = {}
for name, term in terms.items():
    value, gradient = global_value_and_gradient(term, group)
    value_one, gradient_one = global_value_and_gradient(term, one)
    gaps[name] = max(abs(value - value_one) / abs(value_one),
                     float((gradient - gradient_one).abs().max() / gradient_one.abs().max()))
    norm = _grad_norm(term(group), params, group)
    gaps[f"{name}: gradient norm"] = abs(norm - float(gradient_one.norm())) / float(gradient_one.norm())

# residual-based resampling: the residual on each rank's share of the candidates, gathered
squared = lambda p: sum(r.detach().pow(2) for r in problem.residual(student, p))  # noqa: E731
gathered, whole = group.gather(squared(group.shard(points))), squared(points)
gaps["gathered residual"] = float((gathered - whole).abs().max() / whole.abs().max())
gaps["largest residuals chosen"] = float(not torch.equal(torch.topk(gathered, 20).indices, torch.topk(whole, 20).indices))

leave()
if group.is_main:
    threads = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    with open(sys.argv[1], "w") as f:
        json.dump({"world": group.world, "gaps": gaps, "gloo threads after leave": [t for t in threads if "gloo" in t]},
                  f)
