"""The probe processes (probe_server, probes): one fresh child per exercise, out of the notebook's reach.

One fork server per mode (sandboxed where bubblewrap is usable, and unsandboxed) for the toy Lab 1; each test
sends it the definitions of ``double`` as the grader would (labs_utils.instructor.grading.extract) and reads the
reply. What a child does (threads, processes, writing on every descriptor, killing the server) costs its own
exercise only.
"""
from __future__ import annotations

from dataclasses import replace

import grading_fixtures as gf
import pytest
from conftest import OPTIONS, SANDBOX, SANDBOX_FIX

from labs_utils import evidence as ev
from labs_utils.exercises import encoded_inputs
from labs_utils.instructor.grading.kernel import lab_modules
from labs_utils.instructor.grading.probes import ProbeServer
from labs_utils.instructor.grading.run import _probed, judged
from labs_utils.instructor.grading.sandbox import sandbox_for

pytestmark = pytest.mark.slow  # every test talks to a probe server: a fresh Python, in a sandbox

LAB = gf.toy_labs()[1]
DOUBLE = gf.GRADING_1[0]
SEED = 1234
CORRECT = "def double(x):\n    return 2 * x\n"
THREAD_IN_CALL = ("import threading\ndef double(x):\n    worker = threading.Thread(target=lambda: None)\n"
                  "    worker.start()\n    worker.join()\n    return 2 * x\n")
FORK_IN_CALL = ("import os\ndef double(x):\n    if os.fork() == 0:\n        os._exit(0)\n    os.wait()\n"
                "    return 2 * x\n")
FOREIGN_WRITER = """
import os, sys
def double(x):
    frame = sys._getframe()
    while 'inputs' not in frame.f_locals:  # probe_double's: what it was sent
        frame = frame.f_back
    inputs = frame.f_locals['inputs']
    if os.fork() == 0:  # a grandchild writes valid evidence on every descriptor; the child dies without its own
        import grading_fixtures
        from labs_utils import evidence
        forged = b'E' + evidence.encode(grading_fixtures.probe_double(lambda x: 2 * x, inputs=inputs)).encode()
        for fd in range(64):
            try:
                os.write(fd, forged)
            except OSError:
                pass
        os._exit(0)
    os.wait()
    os._exit(0)
"""
EVERY_DESCRIPTOR = ("import os\ndef double(x):\n    for fd in range(64):\n        try:\n"
                    "            os.write(fd, b'\\x00' * 64)\n        except OSError:\n            pass\n"
                    "    return 2 * x\n")


def _sources(text: str) -> list:
    return [["<code cell 1>", 1, text]]


@pytest.fixture(scope="module", params=["sandboxed", "unsandboxed"])
def server(request):
    if request.param == "sandboxed" and not SANDBOX:
        pytest.skip(f"bubblewrap is unusable here: {SANDBOX_FIX}")
    sandbox, _ = sandbox_for("require" if request.param == "sandboxed" else "off", (), lab_modules(OPTIONS),
                             OPTIONS.limits(True))
    with ProbeServer(OPTIONS, LAB, sandbox) as started:
        yield started


def _score(server, text: str, timeout: int = 60):
    reply = server.probe(DOUBLE.name, _sources(text), encoded_inputs(DOUBLE, SEED), timeout)
    return reply, _probed(reply, DOUBLE, SEED, timeout, 60)


def test_correct_definitions_get_valid_evidence_and_full_marks(server):
    reply, result = _score(server, CORRECT)
    assert reply.status == "ok" and reply.spawned == 0 and not reply.foreign
    assert result.points == 2 and judged(DOUBLE, reply.evidence, SEED).points == 2
    assert judged(DOUBLE, reply.evidence, SEED + 1).points == 0  # the evidence is the seed's


def test_a_thread_left_running_by_the_definitions_fails_the_exercise(server):
    text = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n" + CORRECT
    reply, result = _score(server, text)
    assert result.points == 0 and "thread" in result.parts[0].message, result


def test_threads_and_processes_started_while_checked_fail_the_exercise_in_the_sandbox(server):
    if server.sandbox is None:
        pytest.skip("counted by the sandbox's PID namespace")
    for text in (THREAD_IN_CALL, FORK_IN_CALL):
        reply, result = _score(server, text)
        assert reply.spawned >= 10 and result.points == 0, result
        assert "started" in result.parts[0].message and "thread(s) or process(es)" in result.parts[0].message


def test_torch_running_a_large_operation_starts_no_thread_of_its_own(server):
    # A server that preloads torch, as the course's labs' do (toy lab 1's imports none: a child importing torch
    # would start the processes of torch's own import, which count as the student's).
    torch_lab = replace(LAB, table="GRADING_1_TORCH")
    with ProbeServer(OPTIONS, torch_lab, server.sandbox) as torch_server:
        work = "    torch.ones(512, 512) @ torch.ones(512, 512)\n    return"
        text = "import torch\n" + CORRECT.replace("    return", work)
        reply, result = _score(torch_server, text)
    assert (reply.spawned, result.points) == (0, 2), result


def test_valid_evidence_forged_by_another_process_voids_the_exercise(server):
    reply, result = _score(server, FOREIGN_WRITER)
    assert reply.foreign and result.points == 0 and result.status == "interferes", result
    forged = gf.probe_double(lambda x: 2 * x, inputs=gf.inputs_double(seed=SEED))  # what it wrote: valid evidence,
    # full marks if taken
    assert judged(DOUBLE, ev.encode(forged), SEED).points == 2


def test_writing_on_every_descriptor_reaches_neither_the_server_nor_the_grader(server):
    _score(server, CORRECT)
    starts = server.starts
    reply, result = _score(server, EVERY_DESCRIPTOR)  # garbles its own answer at most
    assert reply.status != "lost" and result.points == 0
    assert _score(server, CORRECT)[1].points == 2 and server.starts == starts


def test_an_endless_loop_or_an_exit_costs_only_that_exercise(server):
    reply, result = _score(server, "def double(x):\n    while True:\n        pass\n", timeout=3)
    assert (reply.status, result.status) == ("timeout", "timeout")
    reply, result = _score(server, "import os\ndef double(x):\n    os._exit(3)\n")
    assert result.status == "crashed" and "exit code 3" in result.message
    assert _score(server, CORRECT)[1].points == 2


def test_killing_the_server_costs_that_exercise_and_the_next_one_gets_a_fresh_server(server):
    reply, result = _score(server, "import os, signal\ndef double(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n")
    assert reply.status == "lost" and result.points == 0 and result.status == "crashed"
    assert _score(server, CORRECT)[1].points == 2 and server.starts >= 2


def test_code_that_raises_when_defined_is_named(server):
    _, result = _score(server, "import not_a_module_anywhere\n" + CORRECT)
    assert result.points == 0 and "raised ModuleNotFoundError when it was defined" in result.parts[0].message


# A student's function that searches the probe process for the grader's seed: every frame above it, and every
# container the garbage collector tracks (dicts, lists, tuples: the request, the probe's locals, module globals).
SEED_HUNTER = """
import gc, sys
def double(x):
    where = []
    frame = sys._getframe()
    while frame is not None:
        if 'seed' in frame.f_locals or SEED in [v for v in frame.f_locals.values() if type(v) is int]:
            where.append(f'the frame of {frame.f_code.co_name}')
        frame = frame.f_back
    for obj in gc.get_objects():
        if obj is globals():  # where it wrote SEED itself
            continue
        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
        try:
            if any(type(v) is int and v == SEED for v in values):
                where.append(type(obj).__name__)
        except Exception:
            pass
    if where:
        raise RuntimeError('the seed is in ' + ', '.join(where))
    return 2 * x
"""


def test_the_probe_process_is_sent_the_inputs_and_never_the_seed(server):
    seed = 987_654_321  # more digits than any input drawn from it (at most 10**6), so never one of them
    text = f"SEED = {seed}\n" + SEED_HUNTER
    reply = server.probe(DOUBLE.name, _sources(text), encoded_inputs(DOUBLE, seed), 60)
    result = _probed(reply, DOUBLE, seed, 60, 60)
    assert result.points == 2, result  # it found nothing to regenerate the answer from, so it did the work
    assert judged(DOUBLE, reply.evidence, seed + 1).points == 0  # and the evidence is that seed's inputs'


def test_inputs_the_server_cannot_read_are_the_graders_problem_and_start_no_child(server):
    starts = server.starts
    reply = server.probe(DOUBLE.name, _sources(CORRECT), '{"positive": {"__tensor__": 1}}', 60)
    result = _probed(reply, DOUBLE, SEED, 60, 60)
    assert (reply.status, result.status, server.starts) == ("inputs", "error", starts), result
    assert "not the submission's fault" in result.message
    assert _score(server, CORRECT)[1].points == 2
