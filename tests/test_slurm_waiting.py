"""Submission that waits instead of failing (no cluster needed): what sbatch's answers mean, the
backoff, the submit caps, and reading the caps from accounting's answers.

The answers are sbatch's own stderr, as SLURM 22.05 prints them (taken from the test cluster and
from the reports cited in docs/slurm.md). tests/test_slurm_busy.py runs the executor against the
one-node cluster with a busy controller and a real QOS limit.
"""

import pytest

from imgzoo.slurm_answers import BUSY, LIMIT, REFUSED, classify
from imgzoo.slurm_limits import Association, SubmitLimits
from imgzoo.slurm_queue import SubmitQueue, Waiting

TIMEOUT = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"
QOS_LIMIT = (
    "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit "
    "limit, user's size and/or time limits)\n"
)


@pytest.mark.parametrize(
    ("stderr", "kind", "may_have_queued"),
    [
        (TIMEOUT, BUSY, True),
        (
            "sbatch: error: Batch job submission failed: Resource temporarily unavailable\n",
            BUSY,
            True,
        ),
        ("sbatch: error: slurm_receive_msg: Socket timed out on send/recv operation\n", BUSY, True),
        (
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
            "(connect failure)\n",
            BUSY,
            False,
        ),
        (
            "sbatch: error: slurm_persist_conn_open_without_init: failed to open persistent "
            "connection to host:127.0.0.1:6819: Connection refused\n",
            BUSY,
            False,
        ),
        (QOS_LIMIT, LIMIT, False),
        (
            "sbatch: error: AssocMaxSubmitJobLimit\n"
            + QOS_LIMIT.splitlines(keepends=True)[1],
            LIMIT,
            False,
        ),
        (
            "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy: "
            "MaxSubmitJobs exceeded\n",
            LIMIT,
            False,
        ),
        # the generic policy line alone: a time or size limit too, which waiting does not lift
        (
            "sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: Batch job submission "
            "failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time "
            "limits)\n",
            REFUSED,
            False,
        ),
        (
            "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission "
            "failed: Invalid partition name specified\n",
            REFUSED,
            False,
        ),
        (
            "sbatch: error: Batch job submission failed: Invalid account or account/partition "
            "combination specified\n",
            REFUSED,
            False,
        ),
        (
            "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job "
            "submission failed: Requested node configuration is not available\n",
            REFUSED,
            False,
        ),
        (
            "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n",
            REFUSED,
            False,
        ),
    ],
)
def test_sbatch_answers_are_later_or_never(stderr, kind, may_have_queued):
    answer = classify(stderr)
    assert (answer.kind, answer.may_have_queued) == (kind, may_have_queued)
    assert answer.later == (kind != REFUSED)


def test_an_answer_keeps_sbatchs_words_on_one_line():
    memory = classify(
        "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job "
        "submission failed: Requested node configuration is not available\n"
    )
    assert memory.reason == (
        "Memory specification can not be satisfied; Requested node configuration is not available"
    )
    assert classify(QOS_LIMIT).reason.startswith("QOSMaxSubmitJobPerUserLimit; Job violates")
    assert (
        classify(
            "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"
        ).reason
        == "unrecognized option '--bogus'"
    )


# ---- the backoff and the caps -------------------------------------------------------------------

CAP = "MaxSubmitJobsPerUser of QOS normal"


def waiting(name: str, caps=None) -> Waiting:
    return Waiting(item=name, name=name, caps=caps if caps is not None else {CAP: 2})


def submit_due(queue: SubmitQueue, now: float) -> list[str]:
    """What the executor does each round: submit each due run as it comes (SLURM takes all)."""
    submitted = []
    for w in queue.due(now):
        queue.remove(w)
        queue.taken(f"job-{w.name}", w.caps, runs=1, now=now)
        submitted.append(w.name)
    return submitted


def test_runs_behind_a_full_cap_wait_in_order_and_go_as_jobs_end():
    queue = SubmitQueue(base_s=1, cap_s=8, give_up_s=60)
    for name in "abcd":
        queue.add(waiting(name))
    assert submit_due(queue, now=0) == ["a", "b"]
    assert queue.full({CAP: 2}) == f"2 of 2 jobs queued under {CAP}"
    assert submit_due(queue, now=1) == []
    queue.run_over("job-a", job_over=True)
    # a job of another cap does not wait behind this one's runs
    queue.add(waiting("x", caps={}))
    assert submit_due(queue, now=1) == ["c", "x"]
    queue.run_over("job-b", job_over=False)  # its result is there, SLURM still holds the job
    assert submit_due(queue, now=2) == []
    queue.job_over("job-b")
    queue.run_over("job-c", job_over=True)
    assert submit_due(queue, now=2) == ["d"]


def test_a_packed_job_leaves_the_count_with_its_last_run():
    queue = SubmitQueue()
    queue.taken("7", {CAP: 1}, runs=3, now=0)
    queue.run_over("7", job_over=False)
    queue.run_over("7", job_over=False)
    assert queue.full({CAP: 1}) and queue.ending() == []
    queue.run_over("7", job_over=False)
    assert queue.full({CAP: 1}) and queue.ending() == ["7"]
    queue.job_over("7")
    assert not queue.full({CAP: 1}) and queue.ending() == []


def test_later_backs_off_exponentially_up_to_a_cap_and_a_success_ends_it():
    queue = SubmitQueue(base_s=10, cap_s=40, give_up_s=3600)
    a = waiting("a", caps={})
    queue.add(a)
    busy = classify(TIMEOUT)
    delays = []
    now = 0.0
    for _ in range(5):
        assert [w.name for w in queue.due(now)] == ["a"]
        queue.later(a, busy, now)
        delays.append(queue.delay_s)
        assert list(queue.due(now + queue.delay_s - 0.1)) == []  # not before its time
        now += queue.delay_s
    assert delays == [10, 20, 40, 40, 40]
    assert a.tries == 5 and a.answer == "Socket timed out on send/recv operation"
    queue.taken("1", {}, runs=1, now=now)
    assert queue.delay_s == 0 and queue.waited_s(now + 5) == 0


def test_giving_up_needs_a_controller_saying_later_for_longer_than_the_bound():
    queue = SubmitQueue(base_s=10, cap_s=10, give_up_s=100)
    a = waiting("a", caps={})
    queue.add(a)
    busy = classify(TIMEOUT)
    assert not queue.later(a, busy, now=0)
    assert not queue.later(a, busy, now=100)
    assert queue.later(a, busy, now=101)


def test_a_limit_refusal_while_the_workflows_jobs_hold_the_cap_never_gives_up():
    queue = SubmitQueue(base_s=10, cap_s=10, give_up_s=100)
    queue.taken("1", {CAP: 5}, runs=1, now=0)
    a = waiting("a")
    queue.add(a)
    limit = classify(QOS_LIMIT)
    for now in (0, 500, 5000):  # another workflow holds the rest of the cap
        assert not queue.later(a, limit, now)
    assert list(queue.due(now=5001)) == []
    queue.run_over("1", job_over=True)  # a job ended: the cap may have room, try at once
    assert [w.name for w in queue.due(now=5001)] == ["a"]


def test_a_run_whose_job_may_be_queued_is_not_tried_before_it_is_looked_for():
    queue = SubmitQueue()
    a = waiting("a", caps={})
    a.leftovers = "the attempt's files"
    queue.add(a)
    assert queue.unconfirmed() == [a] and list(queue.due(now=0)) == []
    a.leftovers = None
    assert [w.name for w in queue.due(now=0)] == ["a"]


# ---- the caps, as accounting tells them ---------------------------------------------------------


def test_caps_come_from_the_jobs_qos_and_association():
    limits = SubmitLimits(
        default_account="lab",
        associations={
            ("lab", ""): Association(max_submit_jobs=100, default_qos="normal"),
            ("lab", "gpu"): Association(max_submit_jobs=None, default_qos="gpu-qos"),
            ("other", ""): Association(max_submit_jobs=None, default_qos="normal"),
        },
        qos_limits={"normal": 2, "gpu-qos": 8},
    )
    assert limits.of({}) == {"MaxSubmitJobs of association lab": 100, CAP: 2}
    assert limits.of({"partition": "gpu"}) == {"MaxSubmitJobsPerUser of QOS gpu-qos": 8}
    assert limits.of({"account": "other", "qos": "long"}) == {}
    assert SubmitLimits().of({"qos": "normal"}) == {}
