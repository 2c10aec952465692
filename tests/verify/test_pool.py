"""The killable subprocess pool: results in order, timeouts kill and replace the worker, failures are data."""

import pytest

from qwq.verify.pool import CRASHED, ERROR, OK, TIMEOUT, SubprocessPool
from . import _pool_tasks as tasks


@pytest.fixture(scope="module")
def pool():
    with SubprocessPool(workers=2, timeout=5.0, memory_limit_mb=1024) as p:
        yield p


def test_results_come_back_in_input_order(pool):
    outcomes = pool.map(tasks.add, [(i, 1000) for i in range(50)])
    assert [o.status for o in outcomes] == [OK] * 50
    assert [o.value for o in outcomes] == [i + 1000 for i in range(50)]


def test_a_task_past_its_timeout_is_killed_and_the_worker_replaced(pool):
    before = pool.restarts
    outcomes = pool.map(tasks.sleep_then, [(60, "stuck"), (0.0, "quick"), (0.0, "also")], timeout=1.0)
    assert outcomes[0].status == TIMEOUT and outcomes[0].value is None
    assert [o.value for o in outcomes[1:]] == ["quick", "also"]
    assert pool.restarts == before + 1
    assert pool.map(tasks.add, [(2, 3)])[0].value == 5  # the replacement works


def test_an_exception_is_reported_not_raised(pool):
    (outcome,) = pool.map(tasks.boom, [("bad input",)])
    assert outcome.status == ERROR and "ValueError: bad input" in outcome.error


def test_a_dying_worker_is_a_crash_and_is_replaced(pool):
    outcomes = pool.map(tasks.die, [(), ()])
    assert [o.status for o in outcomes] == [CRASHED, CRASHED]
    assert pool.map(tasks.add, [(1, 1)])[0].value == 2


def test_memory_limit_turns_a_runaway_allocation_into_an_error(pool):
    big, small = pool.map(tasks.hog_memory, [(4096,), (8,)])
    assert big.status == ERROR and "MemoryError" in big.error
    assert small.ok and small.value == 8 * 2**20


def test_unpicklable_result_is_an_error(pool):
    (outcome,) = pool.map(tasks.unpicklable, [()])
    assert outcome.status == ERROR and "cannot send the result back" in outcome.error


def test_closed_pool_refuses_work():
    p = SubprocessPool(workers=1)
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.map(tasks.add, [(1, 2)])
