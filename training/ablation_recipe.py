"""The Burgers recipe ablations behind the training defaults: Adam vs L-BFGS, fixed vs
gradient-norm condition weights, condition weight 1 vs 10. Teacher 5x50, 4,000 points.

    .venv/bin/python training/ablation_recipe.py plain|adaptive|long_w1|long_w10 [--threads 1]
"""

import argparse
import time

import torch

import kd_edge.problems as problems
from kd_edge.training import NetworkConfig, TrainConfig, train_teacher

SHORT = dict(adam_steps=2000, lbfgs_steps=1000, n_condition=300, resample_every=500, log_every=250,
             checkpoint_every=250, adaptive_fraction=0.0)
LONG = dict(adam_steps=1000, lbfgs_steps=6000, n_condition=300, resample_every=500, log_every=500,
            checkpoint_every=500, adaptive_fraction=0.0, adaptive_weights=False)
VARIANTS = {
    "plain": dict(SHORT, adaptive_weights=False, condition_weight=10.0),
    "adaptive": dict(SHORT, adaptive_weights=True),
    "long_w1": dict(LONG, condition_weight=1.0),
    "long_w10": dict(LONG, condition_weight=10.0),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig(network=NetworkConfig(width=50, depth=5), n_collocation=4000, **VARIANTS[args.variant])
    start = time.time()
    model = train_teacher(problems.get("burgers"), config, progress=False)
    print(args.variant, f"{time.time() - start:.0f} s", [(h["step"], round(h["rel_l2"], 5)) for h in model.history
                                                         if "rel_l2" in h])


if __name__ == "__main__":
    main()
