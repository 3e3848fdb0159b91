"""The grader's pieces without a kernel: reading, labs, judging evidence, reports, the sandbox command."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grading_fixtures as gf
import pytest
from conftest import needs_sandbox

from labs_utils import evidence as ev
from labs_utils.exercises import Exercise, Part
from labs_utils.instructor.grading import cgroups
from labs_utils.instructor.grading.batch import collect
from labs_utils.instructor.grading.cli import Maxima, review_rows
from labs_utils.instructor.grading.kernel import Options, death, kernel_environment
from labs_utils.instructor.grading.labs import detect_lab
from labs_utils.instructor.grading.manual import ManualPoint, ManualPointsError, read_manual, review_key
from labs_utils.instructor.grading.reports import feedback, feedback_html, feedback_markdown, write_reports
from labs_utils.instructor.grading.results import Status, SubmissionResult
from labs_utils.instructor.grading.run import _withheld, judged
from labs_utils.instructor.grading.sandbox import LIB, Sandbox, repository_roots
from labs_utils.instructor.grading.submissions import defined_names, empty_answers, read_cells, without_shell_commands
from labs_utils.instructor.notebooks import ANSWER_PROMPT, ANSWER_PROMPTS, PREDICTION_PROMPT


def test_reading_accepts_nbformat3_and_line_lists():
    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\n", "y = 2"]}]}]}
    assert [c.source for c in read_cells(json.dumps(v3).encode())] == ["x = 1\ny = 2"]


def test_cells_are_named_as_a_student_finds_them():
    cells = read_cells(json.dumps(gf.toy_student(1)).encode())
    double = next(c for c in cells if "def double" in c.source)
    assert double.label == "code cell 3 (under “Toy lab 1”, starting `def double(x):`)"
    greet = next(c for c in cells if "def greet" in c.source)
    assert greet.label.startswith("code cell 5 (under “Greeting”")
    commented = read_cells(json.dumps({"cells": [
        {"cell_type": "markdown", "source": "## 2.1 Noise"},
        {"cell_type": "code", "source": "# Exercise: noise\nraise NotImplementedError()\n"},
        {"cell_type": "code", "source": "# add noise\n@torch.no_grad()\ndef add_gaussian_noise(x):\n"
                                        "    raise NotImplementedError()"}]}).encode())
    assert commented[1].first_line == "raise NotImplementedError()"
    assert commented[2].label == "code cell 2 (under “2.1 Noise”, starting `def add_gaussian_noise(x):`)"


def test_empty_written_answers_are_found():
    cells = read_cells(json.dumps(gf.toy_student(1)).encode())
    assert empty_answers(cells, ANSWER_PROMPT) == [f"the answer to “{gf.QUESTION}” (under “Toy lab 1”)"]
    assert empty_answers(read_cells(json.dumps(gf.toy_solution(1)).encode()), ANSWER_PROMPT) == []
    student = json.dumps(gf.toy_student(1)).replace(json.dumps(ANSWER_PROMPT)[1:-1],
                                                    json.dumps(PREDICTION_PROMPT)[1:-1])  # a prediction's prompt
    assert PREDICTION_PROMPT in student
    assert empty_answers(read_cells(student.encode()), ANSWER_PROMPTS) == [
        f"the answer to “{gf.QUESTION}” (under “Toy lab 1”)"]


def test_defined_names_sees_definitions_despite_magics_and_syntax_errors():
    assert defined_names("%matplotlib inline\ndef f():\n    pass\nclass K: ...\nz: int = 3") == {"f", "K", "z"}
    assert defined_names("def broken(:\n    pass\nname = 1") == {"broken", "name"}


def test_detect_lab_prefers_the_code_then_the_file_name():
    labs = gf.toy_labs()
    cells = read_cells(gf.colab_vscode_json(gf.toy_solution(2)).encode())
    assert detect_lab(cells, "lab1.ipynb", labs, None)[0] == 2
    assert detect_lab([], "Lab 1 - alice.ipynb", labs, None) == (1, [])
    assert detect_lab([], "alice.ipynb", labs, None) == (None, [])
    assert detect_lab(cells, "x.ipynb", labs, 1)[0] == 1


def test_the_kernel_is_told_it_is_the_graders_and_gets_nothing_else_of_the_graders_environment(monkeypatch):
    monkeypatch.setenv("LABS_GRADER_SECRET_TOKEN", "s3cret")
    env = kernel_environment(Options(fast=True), "/home/student", "/tmp/k", ["/lib"], None)
    assert env["LABS_GRADING"] == "1" and env["LABS_FAST"] == "1"  # summary() then leaves the checks to the grader
    assert "LABS_GRADER_SECRET_TOKEN" not in env and env["PYTHONPATH"] == "/lib"


def test_collect_names_students_by_relative_path(tmp_path):
    for name in ("alice/lab1.ipynb", "bob/lab1.ipynb", "bob/.ipynb_checkpoints/lab1-checkpoint.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [s for _, s in collect([tmp_path])] == ["alice/lab1", "bob/lab1"]


def test_shell_commands_become_pass_at_their_indentation():
    assert without_shell_commands("if True:\n    !pip install x\ny = 1") == (
        "if True:\n    pass  # shell command left out by the grader\ny = 1", ["!pip install x"])
    assert without_shell_commands("%%bash\nrm -rf data") == ("pass", ["%%bash"])
    assert without_shell_commands("x = 1  # !not a command") == ("x = 1  # !not a command", [])


# ----------------------------------------------------------------------------- judging evidence

DOUBLE = gf.GRADING_1[0]


def _evidence(fn, seed: int) -> str:
    from labs_utils.exercises import draw_inputs, probe

    return ev.encode(probe(DOUBLE, [fn], draw_inputs(DOUBLE, seed)))


def test_evidence_is_judged_part_by_part_in_the_grader():
    assert judged(DOUBLE, _evidence(lambda x: 2 * x, 7), 7).status == Status.PASSED
    half = judged(DOUBLE, _evidence(lambda x: abs(2 * x), 7), 7)
    assert (half.status, half.points, [p.passed for p in half.parts]) == (Status.PARTIAL, 1, [True, False])
    assert "keep the sign" in half.parts[1].message


def test_evidence_from_another_seed_fails():
    assert judged(DOUBLE, _evidence(lambda x: 2 * x, 7), 8).points == 0


def _tensor_text(shape, data: str, dtype: str = "float32") -> str:
    return json.dumps({"positive": {"__tensor__": {"dtype": dtype, "shape": shape, "data": data}}})


UNDECODABLE = [
    "", "not json", '{"__tensor__": {"dtype": "float32", "shape": [9], "data": "AAAA"}}', "[" * 100_000,
    _tensor_text([1], "!!!!!!!!"),  # not base64
    _tensor_text([1], "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"),  # not ASCII
    _tensor_text([1] * 65, "AAAAAA=="),  # more dimensions than numpy has
    _tensor_text([2**64, 0], ""), _tensor_text([2**40, 2**40, 0], ""),  # huge shapes of nothing
    _tensor_text([3], "AAAAAA=="),  # the wrong number of bytes
]


@pytest.mark.parametrize("text", [None, '{"positive": "passed"}', '{"__passed__": true}', '{"positive": [1e999]}',
                                  *UNDECODABLE])
def test_malformed_or_forged_evidence_fails_every_part_without_crashing(text):
    result = judged(DOUBLE, text, 7)
    assert result.points == 0 and all(p.message for p in result.parts)


@pytest.mark.parametrize("text", UNDECODABLE)
def test_every_decode_failure_is_an_evidence_error(text):
    with pytest.raises(ev.EvidenceError):
        ev.decode(text)


@pytest.mark.slow  # starts the judge worker, a fresh Python that imports torch
def test_a_judge_that_runs_too_long_fails_its_exercise_and_the_next_one_is_judged():
    # The judge travels to the worker process by reference, so it lives in a module with a unique name
    # (grading_fixtures): a judge of this test module would make the worker import it, and with it `conftest`,
    # which names two modules in this suite.
    slow = Exercise("slow", ("double",), (Part("one", 1), Part("two", 1)), gf.probe_double, gf.endless_judge,
                    inputs=gf.inputs_double)
    start = time.perf_counter()
    result = judged(slow, _evidence(lambda x: 2 * x, 7), 7, timeout=2)
    assert time.perf_counter() - start < 60 and result.points == 0  # 2 s, plus the worker's start on a busy CI
    assert all("took more than 2 s" in p.message and "interferes with grading" in p.message
               for p in result.parts), [p.message for p in result.parts]
    assert judged(DOUBLE, _evidence(lambda x: 2 * x, 7), 7, timeout=60).points == 2  # in a fresh worker


# ----------------------------------------------------------------------------- reports

def test_feedback_lists_parts_and_empty_answers():
    result = SubmissionResult("ann", "ann_lab1.ipynb", lab=1, empty_answers=["the answer to “Why?” (under “Q1”)"])
    result.exercises = [judged(DOUBLE, _evidence(lambda x: abs(2 * x), 3), 3)]
    text = feedback(result)
    assert "✘ double: 1/2 partly passed" in text and "✔ positive: 1/1" in text and "✘ negative: 0/1" in text
    assert "Written answers left empty" in text and "- the answer to “Why?” (under “Q1”)" in text


def _graded(student: str = "ann") -> SubmissionResult:
    result = SubmissionResult(student, f"{student}_lab1.ipynb", lab=1, student_id="s123")
    result.exercises = [judged(DOUBLE, _evidence(lambda x: abs(2 * x), 3), 3)]
    return result


MANUAL = [ManualPoint("s123", "lab1-Q1", 1.5, "clear", 2), ManualPoint("s123", "lab1-Q2", 0.5, "", 3),
          ManualPoint("s123", "lab2-Q1", 9, "another lab", 4), ManualPoint("bob", "lab1-Q1", 9, "someone else", 5)]


def test_feedback_adds_the_students_manual_points_of_this_lab_to_the_total():
    text = feedback(_graded(), MANUAL, max_points=2)
    assert "Score: 1 / 2 (autograded)" in text and "Written answers (graded by hand): 2 / 4 points" in text
    assert "- Q1: 1.5/2 - clear" in text and "Total: 3\n" in text and "another lab" not in text
    assert "Total:" not in feedback(_graded()) and "(autograded)" not in feedback(_graded())


def test_markdown_and_html_feedback_say_what_the_text_says_and_run_nothing():
    nasty = _graded("<script>alert(1)</script>")
    nasty.exercises[0].parts[1].message = "```\n<img src=x onerror=alert(2)>\n```"
    md = feedback_markdown(nasty, MANUAL)
    assert md.startswith("# Lab 1: <script>") and "**Total: 3**" in md and "## ✘ double: 1/2" in md
    assert "````text" in md  # a fence longer than any run of backticks in the hint
    page = feedback_html(nasty, MANUAL)
    assert "<script>" not in page and "<img" not in page and "&lt;img src=x" in page
    assert "<h1>Lab 1: &lt;script&gt;" in page and "default-src 'none'" in page


def test_gradebook_has_the_student_id_and_auto_manual_total_columns(tmp_path):
    written = write_reports([_graded()], tmp_path / "book.csv", MANUAL, 2, feedback_format="html")
    row = next(csv.DictReader(written[0].open(encoding="utf-8")))
    assert (row["student_id"], row["auto"], row["manual"], row["total"]) == ("s123", "1", "2", "3")
    assert written[1].name == "ann.html" and "Total: 3" in written[1].read_text(encoding="utf-8")
    write_reports([_graded()], tmp_path / "plain.csv")
    row = next(csv.DictReader((tmp_path / "plain.csv").open(encoding="utf-8")))
    assert (row["auto"], row["manual"], row["total"]) == ("1", "", "1")
    with pytest.raises(ValueError, match="choose one of txt, md, html"):
        write_reports([_graded()], tmp_path / "x.csv", feedback_format="pdf")


def test_a_flagged_exercise_needs_review_until_a_manual_row_releases_it(tmp_path):
    result = _graded()
    _withheld(result.exercises[0], ["code cell 3, line 2: `os.kill(1, 9)`: process control (os.kill)"])
    ex = result.exercises[0]
    assert (ex.points, ex.withheld, ex.status, result.total) == (0, 1, Status.NEEDS_REVIEW, 0)
    text = feedback(result)
    assert "✘ double: 0/2 needs review" in text and "the checks gave 1/2" in text and "! code cell 3, line 2" in text
    assert "process control" in feedback_markdown(result)
    row = next(csv.DictReader(write_reports([result], tmp_path / "held.csv")[0].open(encoding="utf-8")))
    assert (row["double"], row["total"]) == ("needs review", "0")
    release = ManualPoint("s123", review_key(1, "double"), 1.0, "read it: harmless", 2)
    row = next(csv.DictReader(write_reports([result], tmp_path / "out.csv", [release])[0].open(encoding="utf-8")))
    assert (row["double"], row["manual"], row["total"]) == ("1", "1", "1")
    text = feedback(result, [release])
    assert "✘ double: 1/2 released after review (read it: harmless)" in text and "Total: 1" in text
    assert "Written answers" not in text  # a release is not a written answer
    assert review_rows([result], 1) == [["s123", "lab1-review-double", "", "needs review; the checks gave 1/2"]]


def test_release_rows_are_checked_against_the_exercises_points(tmp_path):
    labs = gf.toy_labs()
    maxima = Maxima(labs, 2)
    keys = {"lab1-P1", *maxima}
    (tmp_path / "m.csv").write_text(f"student,question,points,comment\nann,{review_key(3, 'sgd')},2,ok\n"
                                    "ann,lab1-P1,2,\n", encoding="utf-8")
    points = read_manual(tmp_path / "m.csv", {"ann"}, keys, maxima)
    assert [(p.lab, p.is_review) for p in points] == [(3, True), (1, False)]
    (tmp_path / "m.csv").write_text(f"student,question,points,comment\nann,{review_key(1, 'greet')},2,\n",
                                    encoding="utf-8")
    with pytest.raises(ManualPointsError, match="above this question's maximum of 1"):
        read_manual(tmp_path / "m.csv", {"ann"}, keys, maxima)


# ----------------------------------------------------------------------------- kernel side, sandbox

def test_exit_codes_of_a_sandboxed_kernel_name_the_signal():
    assert "SIGSEGV" in death(139, sandboxed=True) and "exit code 1" in death(1, sandboxed=True)
    assert "SIGKILL" in death(-9)


@pytest.mark.parametrize("kind", ["root", "user"])
def test_sandbox_binds_an_allow_list_never_a_repository(tmp_path, kind):
    repository = Path(__file__).resolve().parents[3]
    assert repository in repository_roots()
    sandbox = Sandbox(("/somewhere/subs",), (gf.TOY_MODULE,), kind)
    (tmp_path / "w").mkdir()
    args = sandbox.arguments(str(tmp_path / "w"), {"HOME": "/labs-grading/work"})
    sources = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind", "--ro-bind-try")]
    assert str(repository / "labs_utils") in sources and str(repository / "tests" / "grading_fixtures.py") in sources
    assert not [s for s in sources if Path(s) == repository or Path(s) in repository.parents
                or s.startswith(str(repository / "tests") + "/") and not s.endswith("grading_fixtures.py")]
    assert args[args.index(str(repository / "labs_utils")) + 1] == f"{LIB}/labs_utils"
    assert {"--die-with-parent", "--new-session", "--clearenv"} <= set(args)
    assert {"--unshare-net", "--unshare-pid"} <= set(args) or "--unshare-all" in args
    assert args[args.index("--cap-drop") + 1] == "ALL" and "/tmp" in args and "--remount-ro" in args
    if kind == "user":
        assert {"--unshare-user", "--disable-userns"} <= set(args) and args[args.index("--uid") + 1] == "65534"
    command = sandbox.command(str(tmp_path / "w"), ["k"], {})
    assert str(repository) not in " ".join(command[:command.index("--args")])  # the binds travel in a file


@needs_sandbox
def test_sandbox_sees_only_its_own_processes(tmp_path):
    count = ("import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]), "
             "open('/proc/1/cmdline').read().split(chr(0))[:3])")
    command = Sandbox().command(str(tmp_path), [sys.executable, "-c", count], {})
    # (how fast it starts is a benchmark's business: scripts/benchmark_grading.py prints the overhead ratio)
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    processes, init = out.stdout.split(" ", 1)
    assert int(processes) <= 3 and init.strip().endswith("bwrap', '--args', '3']")  # no path, no grader command line


# Each child stays under the per-process heap limit (200 MiB); together they pass the cgroup's cap of the sandbox
# (that limit, the tmpfs caps and 1 GiB: about 2 GiB), and only the cgroup can tell.
FORKS = """
import os, time
pids = []
for _ in range(14):
    pid = os.fork()
    if pid == 0:
        block = bytearray(180 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(3)  # all of them hold their block at once
        os._exit(0)
    pids.append(pid)
print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids))
"""


@pytest.mark.slow  # allocates 2.5 GB in a sandbox, twice
@needs_sandbox
@pytest.mark.skipif(not cgroups._parents(), reason="cgroups can be made only by root, where the hierarchy is writable")
@pytest.mark.parametrize("capped", [True, False])
def test_a_kernels_processes_share_one_memory_cap(tmp_path, monkeypatch, capped):
    if not capped:
        monkeypatch.setattr(cgroups, "create", lambda *args: [])
    command = Sandbox(limits=(("RLIMIT_DATA", 200 * 2**20),)).command(str(tmp_path), [sys.executable, "-c", FORKS], {})
    codes = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert set(codes) <= {0, -9} and (-9 in codes) == capped, codes  # SIGKILL for one child or more, with a cgroup
    for _ in range(50):  # and the cgroup is removed once its processes are gone (they exit after the sandbox's init)
        cgroups.release()
        if not cgroups._made:
            break
        time.sleep(0.1)
    assert not cgroups._made


def test_cgroups_release_from_many_threads_at_once_and_spares_the_ones_just_made(tmp_path, monkeypatch):
    """The grading batch starts kernels from two threads: each create() releases the empty cgroups first. Two
    releases at once must not fail (a grader-error for the whole batch), and a cgroup another thread has just made,
    still empty until its kernel's shell joins it, must stay."""
    old = {tmp_path / f"old{i}": time.monotonic() - 2 * cgroups.SETTLE_SECONDS for i in range(300)}
    fresh = tmp_path / "fresh"
    for folder in [*old, fresh]:
        folder.mkdir()
    monkeypatch.setattr(cgroups, "_made", {**old, fresh: time.monotonic()})
    errors, start = [], threading.Barrier(8)

    def release():
        start.wait()
        try:
            cgroups.release(cgroups.SETTLE_SECONDS)
        except Exception as error:  # noqa: BLE001 - any error here is the bug
            errors.append(error)

    threads = [threading.Thread(target=release) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and list(cgroups._made) == [fresh] and fresh.is_dir()
    assert not any(folder.exists() for folder in old)


@needs_sandbox
def test_a_cgroup_that_refuses_the_kernel_leaves_it_running_under_its_resource_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "create", lambda *args: [str(tmp_path / "missing" / "cgroup.procs")])
    command = Sandbox().command(str(tmp_path), [sys.executable, "-c", "print('ran')"], {})
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout == "ran\n"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_kernel_exits_when_the_grader_dies():
    kernel = ("import sys, time\nfrom labs_utils.instructor.grading.kernel_side import exit_with_parent\n"
              "exit_with_parent(int(sys.argv[1]), poll_seconds=0.1)\ntime.sleep(60)")
    grader = ("import os, subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', {kernel!r}, str(os.getpid())])\n"
              "print(child.pid, flush=True)\ntime.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", grader], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    status = Path(f"/proc/{child}/status")
    deadline = time.monotonic() + 20
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status.exists() or "zombie" in status.read_text(), "the orphaned kernel kept running"


@pytest.mark.slow  # starts fresh judge workers (spawned Pythons) and waits out a 2 s timeout
def test_inputs_are_drawn_in_the_judge_worker_and_a_failure_there_is_the_graders():
    from labs_utils.instructor.grading import judging

    text = judging.inputs_with_timeout(DOUBLE, 7, timeout=60)
    assert ev.decode(text) == gf.inputs_double(seed=7) and text == judging.inputs_with_timeout(DOUBLE, 7, None)
    broken = Exercise("broken", ("double",), DOUBLE.parts, gf.probe_double, gf.judge_double, inputs=gf.broken_inputs)
    for timeout in (60, None):  # in the worker, and in this process
        with pytest.raises(judging.InputsFailed, match="ValueError: no inputs for 7"):
            judging.inputs_with_timeout(broken, 7, timeout)
    endless = Exercise("endless", ("double",), DOUBLE.parts, gf.probe_double, gf.judge_double, inputs=gf.endless_inputs)
    with pytest.raises(judging.InputsFailed, match=r"^the grader's judge process took more than 2 s drawing them$"):
        judging.inputs_with_timeout(endless, 7, timeout=2)  # the grader's own message, not the judge's
    assert judging.inputs_with_timeout(DOUBLE, 7, timeout=60) == text  # a fresh worker took over
