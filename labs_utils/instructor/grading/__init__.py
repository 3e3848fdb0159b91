"""The grader: ``python -m labs_utils.grade`` (see :mod:`labs_utils.instructor.grading.cli`).

Modules, in the order a submission meets them: ``submissions`` (reading cells, defined names, shell
commands), ``labs`` (the labs from the wings, which lab a notebook is), ``sandbox`` (bubblewrap),
``kernel`` (starting one, running code), ``kernel_side`` (what runs inside it: the probes), ``run``
(one submission: cells, probes, judging outside the kernel), ``batch``, ``reports``, ``cli``;
``results`` holds the statuses and result records.
"""
