"""The gradebook of the crafted attack batch (issue 20): every attack of the grader's tests, graded in the sandbox
with the screen on (as instructors grade) and off (the probes alone), beside the honest and half-right notebooks.

    python scripts/crafted_gradebook.py            # needs bubblewrap; about 5 minutes on 2 cores

Prints one row per notebook: points with the screen on (and what it withheld for review), points with the screen
off, and the exercises' statuses. The tests (tests/instructor/grading/test_grading_attacks.py) assert what this
prints; this script only shows it.
"""
from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "instructor" / "grading"), str(ROOT), str(ROOT / "tests")]  # its conftest


def main() -> None:
    import conftest as grading  # tests/instructor/grading/conftest.py: the toy labs' options
    import grading_fixtures as gf
    import test_grading_attacks as attacks

    if not grading.SANDBOX:
        sys.exit(f"bubblewrap is unusable here: {grading.SANDBOX_FIX}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    with tempfile.TemporaryDirectory() as tmp:
        folder, outputs = Path(tmp) / "batch", Path(tmp) / "grades"
        outputs.mkdir()
        notebooks = {"solution_lab1.ipynb": gf.toy_solution(1), "solution_lab3.ipynb": gf.toy_solution(3),
                     **attacks._half_right()}
        notebooks |= {f"{name}_lab1.ipynb": attacks._attacked(1, source)
                      for name, source in {**attacks.ATTACKS_1, **attacks.ATTACKS_2, **attacks.KERNEL_FORGERS,
                                           **attacks._copying(folder),
                                           **attacks._reaching_out(folder, outputs, listener.getsockname()[1])}.items()}
        notebooks |= {f"{name}_lab3.ipynb": attacks._attacked(3, source)
                      for name, source in {"patched_torch": attacks.PATCHED_TORCH, **attacks.ATTACKS_3}.items()}
        grading.write_all(folder, notebooks)
        screened = grading.grade_folder(folder, sandbox="require", hidden=(str(outputs),))
        unscreened = grading.grade_folder(folder, sandbox="require", hidden=(str(outputs),), screen=False)
    print(f"{'notebook':<34} {'screen on':>16} {'screen off':>11}  statuses (screen on)")
    for student in sorted(screened):
        on, off = screened[student], unscreened[student]
        withheld = sum(ex.withheld for ex in on.exercises)
        held = f" (+{withheld:g} held)" if withheld else ""
        statuses = ", ".join(sorted({getattr(ex.status, "value", str(ex.status)) for ex in on.exercises}))
        print(f"{student:<34} {f'{on.total:g}/{on.max_total:g}{held}':>16} {f'{off.total:g}/{off.max_total:g}':>11}  "
              f"{statuses}")
    listener.close()


if __name__ == "__main__":
    main()
