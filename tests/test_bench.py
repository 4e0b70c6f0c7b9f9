import pytest
import torch

from threshsearch.bench import CANDIDATES, format_bench, run_bench, with_list_concatenation
from threshsearch.nn import build_model
from threshsearch.presets import get_preset


def test_list_concatenation_is_the_same_network():
    torch.manual_seed(0)
    model = build_model(get_preset("threshnet79", 10)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        variant = with_list_concatenation(model)
        assert torch.allclose(variant(x), expected, atol=1e-5)
    assert sum(p.numel() for p in variant.parameters()) == 14_371_858


def test_bench_reports_every_candidate_with_ratios_to_threshnet79():
    result = run_bench([32], device="cpu", repeats=1, train_batch=2)
    rows = result["rows"]
    assert [(row["model"], row["setup"]) for row in rows] == [
        (candidate.name, candidate.setup) for candidate in CANDIDATES]
    base = rows[0]
    assert (base["model"], base["setup"]) == ("threshnet79", "threshsearch")
    assert base["latency_b1_ratio"] == base["train_ratio"] == 1.0
    for row in rows:
        assert row["latency_b1_ms"] > 0 and row["train_images_per_s"] > 0
        assert abs(row["train_ratio"] * base["train_images_per_s"]
                   - row["train_images_per_s"]) < 1e-6
    assert {"device", "dtype", "torch", "repeats"} <= set(result)
    table = format_bench(result)
    assert "threshnet79-listcat" in table and "plain" in table and "32x32" in table


def test_bench_times_only_the_candidates_asked_for_with_threshnet79_as_the_base():
    chosen = [c for c in CANDIDATES if c.setup == "threshsearch"
              and c.name in ("threshnet79", "densenet121")]
    result = run_bench([32], device="cpu", repeats=1, train_batch=2, candidates=chosen)
    assert [row["model"] for row in result["rows"]] == ["threshnet79", "densenet121"]
    assert result["rows"][0]["train_ratio"] == 1.0
    with pytest.raises(ValueError, match="threshnet79"):
        run_bench([32], device="cpu", candidates=chosen[1:])
