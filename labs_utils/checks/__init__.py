"""Exercise checks of the labs, one module per lab; everything public is re-exported here.

- ``autoencoders``: Lab 1 (dense and conv autoencoders, corruptions, denoising batches)
- ``checkpointing``: Lab 2 (checkpointing from scratch, memory model)
- ``optimizers``: Lab 3 (SGD ... AdamW against torch.optim)
Each module also holds ``GRADING``, the lab's table of graded exercises (``Exercise`` rows).
"""
from ._common import Exercise  # noqa: F401
from .autoencoders import *  # noqa: F401,F403
from .checkpointing import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
