"""The throughput benchmark's arithmetic: the geometric mean of the pairs' ratios and its
t interval, the machine's busy share, the Ray worker processes started, the pairs' table, and
its refusals before any run."""

import io
import math
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from benchmarks import throughput
from benchmarks.throughput import (
    OURS,
    YARDSTICK,
    Run,
    WorkerStarts,
    cpu_shares,
    geometric_mean_interval,
    is_ray_worker,
)


def test_the_interval_is_the_t_interval_of_the_mean_log_ratio():
    mean, low, high = geometric_mean_interval([0.5, 2.0, 1.0])
    assert mean == pytest.approx(1.0)
    # logs: -ln 2, ln 2, 0; sd ln 2; t(0.975, 2 d.f.) = 4.303
    half = 4.302653 * math.log(2) / math.sqrt(3)
    assert (low, high) == pytest.approx((math.exp(-half), math.exp(half)), rel=1e-5)


def test_equal_ratios_give_a_degenerate_interval_and_one_ratio_none():
    assert geometric_mean_interval([1.2, 1.2]) == pytest.approx((1.2, 1.2, 1.2))
    mean, low, high = geometric_mean_interval([0.8])
    assert mean == pytest.approx(0.8) and math.isnan(low) and math.isnan(high)


def test_the_shares_are_the_busy_and_stolen_parts_of_the_cpu_time_between_two_readings():
    assert cpu_shares((10.0, 1.0, 40.0), (25.0, 3.0, 60.0)) == pytest.approx((0.75, 0.1))
    assert cpu_shares(None, (25.0, 3.0, 60.0)) is None
    assert cpu_shares((10.0, 1.0, 40.0), (10.0, 1.0, 40.0)) is None


def test_the_machines_cpu_time_is_read_from_proc_stat_in_the_kernels_field_order(monkeypatch):
    # user nice system idle iowait irq softirq steal guest guest_nice
    monkeypatch.setattr("builtins.open", lambda path: io.StringIO("cpu  1 2 3 4 5 6 7 8 9 10\n"))
    ticks = os.sysconf("SC_CLK_TCK")
    assert throughput.machine_cpu_s() == pytest.approx((19 / ticks, 8 / ticks, 36 / ticks))
    monkeypatch.setattr("builtins.open", lambda path: io.StringIO("cpu  1 2 3\n"))
    assert throughput.machine_cpu_s() is None


def test_the_table_pairs_each_run_with_its_partner_in_the_order_they_ran():
    runs = [Run(OURS, 0, 100, 50.0, 300, (0.99, 0.02), 70),
            Run(YARDSTICK, 0, 100, 25.0, 250, None, 64),
            Run(YARDSTICK, 1, 100, 40.0, 250, (1.0, 0.0), 90),
            Run(OURS, 1, 100, 40.0, 300, (1.0, 0.0), 80)]
    lines = throughput.pair_table(runs).splitlines()
    assert lines[2] == ("| 1 | this driver first | 2.00, 3.00 | 4.00, 2.50 | 0.50x | "
                        "99%, 2%; - | 70; 64 |")
    assert lines[3] == ("| 2 | yardstick first | 2.50, 3.00 | 2.50, 2.50 | 1.00x | "
                        "100%, 0%; 100%, 0% | 80; 90 |")
    runs[1].workers_started = None  # /proc could not be read
    assert throughput.pair_table(runs).splitlines()[2].endswith("| 70; - |")


def test_the_summaries_are_of_trials_and_of_epochs_a_second():
    runs = [Run(OURS, 0, 100, 50.0, 300, None, 1), Run(YARDSTICK, 0, 100, 25.0, 250, None, 1),
            Run(YARDSTICK, 1, 100, 40.0, 250, None, 1), Run(OURS, 1, 100, 40.0, 300, None, 1)]
    trials = throughput.ratio_line(runs, "trials a second", lambda run: run.trials_per_s)
    epochs = throughput.ratio_line(runs, "epochs a second", lambda run: run.epochs_per_s)
    # trials: 0.5x and 1.0x, geometric mean 0.71x; epochs: 0.6x and 1.2x, 0.85x
    assert trials.startswith("this driver / yardstick, trials a second: geometric mean 0.71x")
    assert epochs.startswith("this driver / yardstick, epochs a second: geometric mean 0.85x")
    assert trials.endswith("over 2 pairs")


@pytest.mark.parametrize("argument", ["--pairs=0", "--trials=0", "--workers=0", "--epoch-s=-1"])
def test_bad_counts_are_refused_before_any_run(monkeypatch, capsys, argument):
    monkeypatch.setattr(sys, "argv", ["throughput", argument])
    with pytest.raises(SystemExit):
        throughput.main()
    assert argument.split("=")[0] in capsys.readouterr().err


def test_ray_workers_are_told_by_their_command_line():
    assert is_ray_worker(["ray::IDLE"]) and is_ray_worker(["ray::ImplicitFunc.train", ""])
    assert is_ray_worker(["/venv/bin/python", "/ray/setup_worker.py",
                          "/ray/_private/workers/default_worker.py", "--node-ip-address=x"])
    assert not is_ray_worker(["ray::RuntimeEnvAgent"]) and not is_ray_worker([])
    # The raylet names the worker script inside one longer argument.
    assert not is_ray_worker(["/ray/raylet", "--python_worker_command=/venv/bin/python "
                              "/ray/default_worker.py --node-ip-address=x"])


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads Linux's /proc")
def test_only_ray_worker_processes_started_meanwhile_below_this_one_are_counted():
    python = shlex.quote(sys.executable)
    code = "'import time; time.sleep(3)'"
    worker = "default_$(echo worker).py"  # the shell's own command line spells it in parts

    def sleeper(*words: str, title: str | None = None) -> subprocess.Popen:
        """A process of a few seconds; ``title`` its argv[0], as Ray titles a worker."""
        return subprocess.Popen([title or sys.executable, "-c", code.strip("'"), *words],
                                executable=sys.executable)

    def shell(line: str) -> subprocess.Popen:
        return subprocess.Popen(["sh", "-c", line], stdout=subprocess.PIPE, text=True)

    before = sleeper("default_worker.py")  # a worker's command line, but already running
    with WorkerStarts(every_s=0.05, rounds=40) as starts:
        started = [sleeper("default_worker.py"), sleeper(title="ray::IDLE"), sleeper("other"),
                   sleeper(title="ray::RuntimeEnvAgent"), sleeper("ray::IDLE"),
                   # exec'd into a worker's command line only after it was first seen
                   shell(f"sleep 0.3; exec {python} -c {code} {worker}")]
        # left to init before it takes a worker's command line: no descendant
        orphan = shell(f"(sleep 0.3; exec {python} -c {code} {worker}) & echo $!")
        orphan_pid = int(orphan.stdout.readline())
        time.sleep(1.0)
        with open(f"/proc/{orphan_pid}/cmdline", "rb") as cmdline:
            assert b"default_worker.py" in cmdline.read()  # it ran, as a worker would look
    for process in (before, *started, orphan):
        process.kill()
        process.wait()
    os.kill(orphan_pid, signal.SIGKILL)
    assert starts.started == 3  # the first two and the late one
