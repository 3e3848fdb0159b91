"""Every lab's exercise checks under one name: ``from labs_utils.checks import check_noise``.

A lazy façade over the wings' ``checks`` modules: importing a Lab 1 check loads Lab 1's checks
(and the core check machinery) and nothing of Lab 2 or Lab 3. Each wing keeps its own ``LAB`` and
``GRADING`` table and lists its checks in ``checks.__all__``; the façade is built from those lists
(:mod:`labs_utils._wings`), and the grader finds the labs through :func:`labs_utils.exercises.discover_labs`.
"""
from ._lazy import lazy_module
from ._wings import check_exports

# check name -> the wing module that defines it (relative to labs_utils), read from each wing's checks.__all__
_EXPORTS = {**check_exports(), "Exercise": "checking", "LabInfo": "checking"}

__getattr__, __dir__, __all__ = lazy_module(__name__, (), _EXPORTS, base="labs_utils")
