"""The busy-share sampler: samples stamped in a thread, averaged over a window; a broken
reader stops sampling and says why."""

import time

from benchmarks.gpu_busy import BusySampler, busy_reader


def test_the_share_averages_the_samples_inside_the_window_only():
    sampler = BusySampler(lambda: 0.0, 1.0)
    sampler.samples = [(10.0, 20.0), (11.0, 60.0), (12.0, 100.0), (13.0, 0.0)]
    assert sampler.share(11.0, 12.0) == 0.8
    assert sampler.share(10.0, 13.0) == 0.45
    assert sampler.share(20.0, 30.0) is None


def test_the_thread_samples_until_stopped_and_a_broken_reader_ends_it():
    with BusySampler(lambda: 50.0, 0.01) as sampler:
        time.sleep(0.1)
    count = len(sampler.samples)
    assert count >= 2 and sampler.error is None
    time.sleep(0.05)
    assert len(sampler.samples) == count
    assert sampler.share(0, time.time()) == 0.5

    def broken() -> float:
        raise OSError("nvidia-smi vanished")

    with BusySampler(broken, 0.01) as failed:
        time.sleep(0.05)
    assert failed.samples == [] and failed.error == "OSError: nvidia-smi vanished"


def test_the_smoke_reader_is_named_a_stand_in_and_reads_a_percentage():
    read, source = busy_reader(smoke=True)
    assert "stand-in" in source
    assert 0 <= read() <= 100
