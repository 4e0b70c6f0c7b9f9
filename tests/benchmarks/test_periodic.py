"""The thread that repeats a benchmark's work: its calls at start and on exit as asked, the
first failure kept in a line and ending the calls, no call after a failed set-up."""

from benchmarks.periodic import Periodic


class Counting(Periodic):
    def __init__(self, **when: bool):
        super().__init__(3600.0, **when)  # never due while entered: only start and exit
        self.calls = 0

    def _tick(self) -> None:
        self.calls += 1


def test_the_calls_at_start_and_on_exit_are_as_asked():
    for at_start in (False, True):
        for at_exit in (False, True):
            with Counting(at_start=at_start, at_exit=at_exit) as counting:
                pass
            assert counting.calls == at_start + at_exit and counting.error is None


def test_a_failure_ends_the_calls_and_is_kept_in_one_line():
    class Failing(Counting):
        def _tick(self) -> None:
            self.calls += 1
            raise OSError("gone\n  away")

    with Failing(at_start=True, at_exit=True) as failing:
        pass
    assert failing.calls == 1 and failing.error == "OSError: gone away"


def test_an_error_before_entering_means_no_call():
    counting = Counting(at_start=True, at_exit=True)
    counting.error = "no /proc"
    with counting:
        pass
    assert counting.calls == 0 and counting.error == "no /proc"


def test_no_call_at_start_once_it_is_told_to_stop():
    counting = Counting(at_start=True, at_exit=False)
    counting._stop.set()  # left before its thread began
    with counting:
        pass
    assert counting.calls == 0


def test_a_failure_between_start_and_exit_ends_the_calls_there():
    class ThirdFails(Periodic):
        def __init__(self):
            super().__init__(0.001, at_start=True, at_exit=True)
            self.calls = 0

        def _tick(self) -> None:
            self.calls += 1
            if self.calls == 3:
                raise ValueError("x" * 300)

    with ThirdFails() as failing:
        failing._thread.join(timeout=10)  # it ends by itself at the third call
    assert failing.calls == 3 and failing.error == ("ValueError: " + "x" * 300)[:200]
