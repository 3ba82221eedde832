import pytest
import torch

from worker.engine.commit_rules import factor_rule, get_rule, threshold_rule, topk_rule

NEG = float("-inf")


def test_threshold_commits_all_above_tau_and_never_masked_out_positions():
    conf = torch.tensor([[0.95, 0.5, 0.91, NEG], [0.2, 0.3, NEG, NEG]])
    got = threshold_rule(conf, torch.tensor([0.9, 0.9]))
    assert got.tolist() == [[True, False, True, False], [False, True, False, False]]


def test_threshold_always_commits_top1():
    conf = torch.tensor([[0.1, 0.4, 0.2]])
    assert threshold_rule(conf, torch.tensor([0.99])).tolist() == [[False, True, False]]


def test_threshold_one_commits_only_certain_positions():
    conf = torch.tensor([[1.0, 0.999, 1.0]])
    assert threshold_rule(conf, torch.tensor([1.0])).tolist() == [[True, False, True]]


def test_factor_commits_longest_prefix_meeting_bound():
    # sorted: 0.9 (>= 1-0.5/1=0.5), 0.8 (>= 0.75), 0.7 (< 0.833): commit two
    conf = torch.tensor([[0.7, 0.9, 0.8, NEG]])
    assert factor_rule(conf, torch.tensor([0.5])).tolist() == [[False, True, True, False]]


def test_factor_commits_at_least_one():
    conf = torch.tensor([[0.1, 0.2]])
    assert factor_rule(conf, torch.tensor([0.5])).tolist() == [[False, True]]


def test_topk_commits_k_most_confident_within_valid():
    conf = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.3, NEG, NEG, NEG]])
    got = topk_rule(conf, torch.tensor([2.0, 2.0]))
    assert got.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown commit rule 'greedy'"):
        get_rule("greedy")


def test_topk_with_a_huge_or_infinite_k_commits_the_whole_row():
    """A k past the width once cast to a negative integer: the row never moved again."""
    conf = torch.tensor([[0.2, 0.9, 0.5], [0.1, NEG, NEG]])
    for k in (1e308, float("inf"), 7.0):
        commit = topk_rule(conf, torch.tensor([k, k]))
        assert commit.tolist() == [[True, True, True], [True, False, False]]
