"""``python -m labs_utils.grade``: the grader's stable entry point (see :mod:`labs_utils.instructor.grading`)."""
from .instructor.grading.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
