"""The grader: ``python -m labs_utils.grade`` (see :mod:`labs_utils.instructor.grading.cli`).

Modules, in the order a submission meets them: ``submissions`` (reading cells, defined names, shell
commands), ``labs`` (the labs from the wings, which lab a notebook is), ``screen`` and ``copies`` (flagging code
that has no place in an exercise, before it runs), ``sandbox`` and ``_sandbox_init`` (bubblewrap, the allow-list,
dropping privileges and setting limits), ``kernel`` (starting one, running the notebook's cells),
``kernel_side`` (how it starts: limits, exit with the grader), ``extract`` (the code one exercise needs, read
out of the notebook), ``probes`` and ``probe_server`` (a sandboxed fork server, one fresh process per exercise:
the probes), ``run`` (one submission: cells, probes, the budget), ``judging`` (the judges, in a worker under a
time limit), ``batch``, ``reports``, ``cli``; ``results`` holds the statuses and result records.
"""
