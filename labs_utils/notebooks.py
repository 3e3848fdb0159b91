"""``python -m labs_utils.notebooks build|check``: the student-notebook builder's stable entry point.

See :mod:`labs_utils.instructor.notebooks`.
"""
from .instructor.notebooks import main

if __name__ == "__main__":
    raise SystemExit(main())
