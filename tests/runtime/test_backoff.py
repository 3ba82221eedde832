from orchestrator.runtime.backoff import StartBackoff


def test_failed_starts_double_the_wait_up_to_the_cap_and_success_clears_it():
    b = StartBackoff(first_s=5, max_s=30)
    key = (0, 2)
    assert b.wait_s(key, 100.0) == 0.0
    assert b.failed(key, 100.0) == 5
    assert b.wait_s(key, 101.0) == 4.0
    assert b.wait_s(key, 105.0) == 0.0
    assert [b.failed(key, 200.0) for _ in range(4)] == [10, 20, 30, 30]
    assert b.failures(key) == 5 and b.wait_s(key, 210.0) == 20.0
    assert b.wait_s((1, 2), 210.0) == 0.0  # another node is not held back
    b.succeeded(key)
    assert b.failures(key) == 0 and b.wait_s(key, 210.0) == 0.0
