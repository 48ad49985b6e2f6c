"""`python -m kd_edge.cli` (what torchrun starts): the kd-edge command line. Under torchrun, an
uncaught error's traceback goes into torchrun's failure report, naming the rank."""

import sys

from torch.distributed.elastic.multiprocessing.errors import record

from kd_edge.cli import main

sys.exit(record(main)())
