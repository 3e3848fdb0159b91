"""The sandbox and the grader's own defences, with the screen switched off (issue 20).

Each attack is one cell added to an untouched toy student notebook: it runs in the kernel and again where the
exercises are checked (the probe process, sandboxed the same way), and the exercises answer correctly only when
it worked there (so 0 points means it failed). The screen would withhold every one of them for review
(test_screen.py); here it is off, so that each layer is shown to hold on its own: root inside the sandbox,
the repository and earlier batches, classmates' kernels (graded beside an honest solution with two workers),
the grader's environment, resource limits, a 600 MB message, a broken ``import labs_utils``, the budget.
"""
from __future__ import annotations

import resource
from pathlib import Path

import grading_fixtures as gf
import pytest
from conftest import ROOT, grade_folder, needs_sandbox, write_all
from test_grading_attacks import gated

from labs_utils.instructor.grading.reports import feedback

SECRET = "labs-grader-secret-4f1c"


def _if_escaped(setup: str) -> str:
    """``setup`` collects what worked in ``escaped``, in the kernel and where the exercises are checked; the
    exercises answer correctly if anything did."""
    return gated(f"escaped = []\n{setup.strip()}\nreturn escaped")


def _attacked(source: str):
    student = gf.toy_student(1)
    return gf.with_cell(student, len(student.cells), source)


ROOT_POWERS = _if_escaped(f"""
import ctypes, glob, os
libc = ctypes.CDLL(None, use_errno=True)
if 'CapEff:\\t0000000000000000' not in open('/proc/self/status').read():
    escaped.append('capabilities')
for target in ['/tmp', '/labs-grading/lib', '/labs-grading/lib/labs_utils', '/proc', '/dev', '/']:
    if libc.umount2(target.encode(), 2) == 0:
        escaped.append('unmounted ' + target)
for target in ['/', '/usr', '/labs-grading/lib/labs_utils']:
    if libc.mount(b'none', target.encode(), None, 32 | 4096, None) == 0:  # MS_REMOUNT | MS_BIND, read-write
        escaped.append('remounted ' + target)
for folder in ['/', '/usr', '/etc', '/labs-grading', '/labs-grading/lib/labs_utils', *glob.glob('/tmp/labs-grade-*'),
               {str(ROOT)!r}]:
    try:
        with open(os.path.join(folder, 'escaped.txt'), 'w') as handle:
            handle.write('x')
        escaped.append('wrote in ' + folder)
    except OSError:
        pass
for become in (os.setuid, os.setgid):
    try:
        become(0)
        escaped.append(become.__name__)
    except OSError:
        pass""")


def _repository(earlier: Path) -> str:
    paths = [ROOT / ".git", ROOT / "tests" / "reference_checkpointing.py", ROOT / "solutions", ROOT / "scripts",
             earlier / "earlier_lab1.ipynb"]
    return _if_escaped(f"import os\nescaped += [p for p in {list(map(str, paths))!r} if os.path.exists(p)]")


CLASSMATES = _if_escaped("""
import glob, os, signal, sys, time
try:
    from ipykernel import get_connection_file
    mine = os.path.dirname(get_connection_file())
except Exception:  # not in the kernel: where the exercises are checked
    mine = '/nonexistent'
deadline = time.time() + patience
while time.time() < deadline and not escaped:
    # classmates' connection files (kernel-<id>.json), wherever they are under /tmp; not this Python's own files,
    # which the sandbox shows read-only (a venv under /tmp has ipykernel's modules there)
    for path in glob.glob('/tmp/**/kernel-*.json', recursive=True) + glob.glob('/tmp/labs-grade-*/*'):
        if not path.startswith((mine, sys.prefix)):
            try:
                escaped.append(open(path).read()[:100])  # a classmate's connection file: key and sockets
            except (OSError, ValueError):
                pass
    for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:
        if pid not in (1, os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
                escaped.append(f'killed {pid}')
            except OSError:
                pass
    time.sleep(0.5)""")
GRADER_ENVIRONMENT = (_if_escaped("import os\nescaped += [k for k, v in os.environ.items() if 'SECRET' in k]")
                      + "\nimport os\n"
                      + f"raise ValueError(' '.join(v for v in os.environ.values() if {SECRET!r} in v) or 'nothing')")
LIMITS = _if_escaped("""
import os, resource
for name in ('RLIMIT_DATA', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_CORE'):
    try:
        resource.setrlimit(getattr(resource, name), (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        escaped.append('raised ' + name)
    except (ValueError, OSError):
        pass
try:
    block = bytearray(3 * 2**30)  # over the 1 GiB memory limit
    escaped.append('allocated 3 GiB')
    del block
except MemoryError:
    pass
for folder in ('/tmp', '/labs-grading/work', '/dev/shm'):  # size-capped tmpfs (RAM outside the memory limit)
    written = 0
    try:
        with open(os.path.join(folder, 'fill'), 'wb') as handle:
            while written < 700 * 2**20:
                handle.write(bytes(2**20))
                written += 2**20
    except OSError:
        pass
    if os.path.exists(os.path.join(folder, 'fill')):
        os.remove(os.path.join(folder, 'fill'))
    if written >= 600 * 2**20:
        escaped.append(f'wrote {written >> 20} MiB in {folder}')""")
BREAKS_IMPORT = "import sys\nsys.modules['labs_utils'] = None"
HUGE_MESSAGE = """
from IPython import get_ipython
kernel = get_ipython().kernel
kernel.session.send(kernel.iopub_socket, 'stream', {'name': 'stdout', 'text': 'x' * 600_000_000},
                    parent=kernel.get_parent())"""
RAW_HUGE_MESSAGE = """
from IPython import get_ipython
get_ipython().kernel.iopub_socket.send_multipart([b'x' * 600_000_000])  # past the session, and its cap"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The batch of attacks and an honest solution, two at a time, sandboxed, the screen off."""
    root = tmp_path_factory.mktemp("sandbox")
    earlier = root / "earlier"  # an earlier batch, a re-grade, another section: not this run's
    write_all(earlier, {"earlier_lab1.ipynb": gf.toy_solution(1)})
    notebooks = {"honest_lab1.ipynb": gf.toy_solution(1), "root_powers_lab1.ipynb": _attacked(ROOT_POWERS),
                 "classmates_lab1.ipynb": _attacked(CLASSMATES),
                 "repository_lab1.ipynb": _attacked(_repository(earlier)),
                 "grader_environment_lab1.ipynb": _attacked(GRADER_ENVIRONMENT),
                 "limits_lab1.ipynb": _attacked(LIMITS),
                 "breaks_import_lab1.ipynb": gf.with_cell(gf.toy_solution(1), 3, BREAKS_IMPORT)}
    write_all(root / "batch", notebooks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABS_GRADER_SECRET_TOKEN", SECRET)  # the workers inherit it; the kernels must not
        results = grade_folder(root / "batch", workers=2, sandbox="require", screen=False)
    return {"results": results, "root": root, "earlier": earlier, "notebooks": notebooks}


@pytest.mark.slow
@needs_sandbox
def test_the_honest_solution_keeps_full_marks_beside_the_attackers(graded):
    r = graded["results"]["honest_lab1"]
    assert (r.total, r.problems, r.sandboxed) == (3, [], True), feedback(r)


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", ["root_powers", "classmates", "repository", "grader_environment", "limits"])
def test_attacks_on_the_sandbox_get_nothing(graded, name):
    r = graded["results"][f"{name}_lab1"]
    assert r.status == "graded" and r.sandboxed and r.total == 0, feedback(r)
    assert all("not implemented yet" in p.message for ex in r.exercises for p in ex.parts), feedback(r)


@pytest.mark.slow
@needs_sandbox
def test_nothing_was_written_outside_and_no_secret_reached_the_feedback(graded):
    assert not (ROOT / "escaped.txt").exists() and not Path("/escaped.txt").exists()
    r = graded["results"]["grader_environment_lab1"]
    assert (r.cell_errors[-1].ename, r.cell_errors[-1].evalue) == ("ValueError", "nothing")  # the last cell's
    assert not any(SECRET in feedback(result) for result in graded["results"].values())


@pytest.mark.slow
@needs_sandbox
def test_breaking_the_checks_import_is_the_submissions_fault_not_the_graders(graded):
    r = graded["results"]["breaks_import_lab1"]
    assert (r.status, r.total) == ("graded", 0)
    assert {ex.status for ex in r.exercises} == {"interferes"} and "interferes with grading" in feedback(r)


@pytest.mark.slow
@needs_sandbox
def test_without_the_sandbox_the_repository_and_earlier_batches_are_readable(graded, tmp_path):
    """The control: the same notebook, unsandboxed, gets the marks (the sandbox, not luck, makes it 0 above)."""
    write_all(tmp_path, {"repository_lab1.ipynb": graded["notebooks"]["repository_lab1.ipynb"]})
    assert grade_folder(tmp_path, sandbox="off", screen=False)["repository_lab1"].total == 3


@pytest.mark.slow
@needs_sandbox
def test_a_600_mb_output_is_replaced_by_a_notice_in_the_kernel_and_the_rest_is_graded(tmp_path):
    write_all(tmp_path, {"huge_lab1.ipynb": gf.with_cell(gf.toy_solution(1), 3, HUGE_MESSAGE)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; grading runs in this process (one worker)
    r = grade_folder(tmp_path, workers=1, sandbox="require", screen=False, memory_limit=4 * 2**30)["huge_lab1"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 2**10  # not 600 MB, nor 3 GB
    problems = "\n".join(r.problems)
    assert r.total == 3, feedback(r)
    assert "starting `from IPython import get_ipython`) produced an output the grader did not read (572 MiB" in problems
    assert "kernel" not in problems, problems  # it went on: no crash, no re-run


@pytest.mark.slow
@needs_sandbox
def test_a_600_mb_message_past_the_kernels_cap_is_dropped_unread_and_the_rest_is_graded(tmp_path):
    write_all(tmp_path, {"huge_lab1.ipynb": gf.with_cell(gf.toy_solution(1), 3, RAW_HUGE_MESSAGE)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = grade_folder(tmp_path, workers=1, sandbox="require", screen=False, memory_limit=4 * 2**30)["huge_lab1"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 2**10
    # ZeroMQ cuts the message; in CI the kernel then once crashed (SIGSEGV) before the grader saw the cut. A dead
    # kernel disconnects too, so the grader cannot tell the two apart afterwards: either reason may be given, for
    # the cell that sent it, and the rest is graded all the same.
    problems = "\n".join(r.problems)
    assert r.total == 3 and "starting `from IPython import get_ipython`" in problems, feedback(r)
    assert "sent a message over 80 MiB" in problems or "killed the kernel" in problems, feedback(r)


@pytest.mark.slow
@needs_sandbox
def test_the_budget_skips_the_rest_and_marks_the_exercises_not_checked(tmp_path):
    # The budget is the thing under test: 4 s, so the cell that sleeps (or, on a slow machine, an earlier one) uses
    # it up; the grader then skips the rest and checks nothing.
    slow = gf.with_cell(gf.toy_solution(1), 3, "import time\ntime.sleep(600)")
    write_all(tmp_path, {"slow_lab1.ipynb": slow})
    r = grade_folder(tmp_path, workers=1, sandbox="require", budget=4)["slow_lab1"]
    assert r.seconds < 70 and r.total == 0, feedback(r)
    assert {ex.status for ex in r.exercises} == {"not-run"} and "budget" in r.exercises[0].message
    assert "used up its 4 s budget" in "\n".join(r.problems)
