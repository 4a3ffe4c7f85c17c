"Fast tests of invdiff_nb.bias_metrics: the bias score (hand-computed cases), group tables, classifiers, evaluate_bias."
import math

import pytest
import torch
from torch import nn

from invdiff_nb.bias_data import get_spec, make_benchmark
from invdiff_nb.bias_metrics import (AttrClassifierConfig, AttributeClassifier, attribute_classifiers, bias_score,
                                     bias_score_from_counts, classifier_accuracy, attr_classifier_config, count_table_markdown,
                                     evaluate_bias, feature_metrics, group_count_table, group_proportions, worst_group_share)


# ---------------------------------------------------------------- bias score: hand-computed

@pytest.mark.parametrize('counts, expected', [
    ([[3, 1]], 0.5),                         # |3-1| / 4, one pair
    ([[2, 2]], 0.0),
    ([[5, 0]], 1.0),
    ([[2, 1, 1]], 1 / 6),                    # (1 + 1 + 0) / 4 / 3 pairs
    ([[0, 0, 7, 0]], 0.5),                   # 3 pairs of |7-0| / 7, over 6 pairs
    ([[3, 2, 1, 1], [1, 1, 2, 3]], (1 + 2 + 2 + 1 + 1 + 0) / 7 / 6),   # FairFace's 3:2:1:1 | 1:1:2:3, both rows alike
    ([[3498, 184], [56, 1057]], (3314 / 3682 + 1001 / 1113) / 2),       # Waterbirds' training split
    ([[4, 0], [0, 0]], 1.0),                 # an empty class is left out
])
def test_bias_score_hand_computed(counts, expected):
    s, per = bias_score_from_counts(torch.tensor(counts))
    assert abs(s - expected) < 1e-12


def test_bias_score_from_labels_and_per_class():
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    bias = torch.tensor([0, 0, 0, 1, 2, 1, 0])
    assert group_count_table(classes, bias, 2, 3).tolist() == [[3, 1, 0], [1, 1, 1]]
    s, per = bias_score_from_counts(group_count_table(classes, bias, 2, 3))
    assert abs(per[0] - (2 + 3 + 1) / 4 / 3) < 1e-12 and per[1] == 0
    assert abs(bias_score(classes, bias, 2, 3) - s) < 1e-15
    s, per = bias_score_from_counts(torch.tensor([[1, 1], [0, 0]]))
    assert math.isnan(per[1]) and s == 0


def test_bias_score_invariant_to_scaling_and_permutation():
    c = torch.tensor([[5, 2, 9, 1], [3, 3, 0, 8]])
    assert abs(bias_score_from_counts(c)[0] - bias_score_from_counts(7 * c)[0]) < 1e-12
    assert abs(bias_score_from_counts(c)[0] - bias_score_from_counts(c[:, [2, 0, 3, 1]])[0]) < 1e-12


def test_bias_score_bad_input():
    with pytest.raises(ValueError, match='K >= 2'): bias_score_from_counts(torch.tensor([[3], [1]]))
    with pytest.raises(ValueError, match='non-negative'): bias_score_from_counts(torch.tensor([[3, -1]]))
    with pytest.raises(ValueError, match='empty'): bias_score_from_counts(torch.zeros(3, 2))
    with pytest.raises(ValueError, match='same length'): bias_score(torch.tensor([0, 1]), torch.tensor([0]), 2, 2)
    with pytest.raises(ValueError, match=r'class labels must be in \[0, 2\)'): bias_score(torch.tensor([2]), torch.tensor([0]), 2, 2)
    with pytest.raises(ValueError, match=r'bias labels must be in \[0, 4\)'): bias_score(torch.tensor([0]), torch.tensor([-1]), 2, 4)


def test_proportions_worst_share_and_table():
    c = torch.tensor([[3498, 184], [56, 1057]])
    p = group_proportions(c)
    assert torch.allclose(p.sum(1), torch.ones(2, dtype=torch.float64))
    assert abs(worst_group_share(c) - 184 / 3682) < 1e-12
    assert worst_group_share(torch.full((2, 4), 3)) == 0.25
    md = count_table_markdown(c, get_spec('waterbirds'))
    assert '| landbird | 3498 (0.95) | 184 (0.05) |' in md


# ---------------------------------------------------------------- classifier

def test_classifier_shapes_and_errors():
    net = AttributeClassifier(attr_classifier_config('fairface', 32, 'smoke'))
    lt, lb = net(torch.zeros(3, 3, 32, 32))
    assert lt.shape == (3, 2) and lb.shape == (3, 4)
    t, b = net.predict(torch.zeros(5, 3, 32, 32), batch_size=2)
    assert t.shape == b.shape == (5,) and net.embed(torch.zeros(5, 3, 32, 32)).shape == (5, net.feat_dim)
    with pytest.raises(ValueError, match=r'expects images \(B, 3, 32, 32\)'): net(torch.zeros(3, 3, 16, 16))
    with pytest.raises(ValueError, match='arch'): AttrClassifierConfig(arch='mlp')
    with pytest.raises(ValueError, match='not supported'): AttrClassifierConfig(size=48)
    with pytest.raises(KeyError, match='unknown benchmark'): AttrClassifierConfig(benchmark='mnist')
    with pytest.raises(KeyError, match='unknown profile'): attr_classifier_config('celeba', 16, 'fast')
    assert attr_classifier_config('celeba', 64, 'smoke').arch == 'resnet18'


def test_resnet18_option_builds_without_download():
    net = AttributeClassifier(attr_classifier_config('waterbirds', 64, 'smoke'))
    assert net.feat_dim == 512 and net(torch.zeros(2, 3, 64, 64))[0].shape == (2, 2)


def test_attribute_classifiers_trains_caches_and_evaluates(tmp_path):
    kw = dict(profile='smoke', root=tmp_path, device='cpu', verbose=False, steps=60, n_per_group=48)
    clf = attribute_classifiers('celeba', 16, seed=0, **kw)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == '.safetensors'
    again = attribute_classifiers('celeba', 16, seed=0, **kw)             # loaded from the cache
    x = make_benchmark('celeba', 'test', 16, n_per_group=16).x
    assert torch.equal(clf.predict(x)[1], again.predict(x)[1]) and not again.training
    test = make_benchmark('celeba', 'test', 16, n_per_group=16)
    acc = classifier_accuracy(clf, test)
    assert acc['bias_acc'] > 0.8 and acc['target_acc'] > 0.8           # a short run already separates both attributes
    ev = evaluate_bias(test.x, test.target, clf)
    assert ev['group_counts'].shape == (2, 2) and ev['group_counts'].sum() == len(test)
    counts = group_count_table(test.target, clf.predict(test.x)[1], 2, 2)      # the score of the classifier's own labels
    assert torch.equal(ev['group_counts'], counts) and ev['bias_score'] == bias_score_from_counts(counts)[0]
    assert abs(ev['target_acc'] - acc['target_acc']) < 1e-12
    fm = feature_metrics(clf, test.x, test.x)
    assert abs(fm['fd']) < 1e-4 and fm['precision'] == 1.0 and fm['recall'] == 1.0
    with pytest.raises(ValueError, match='class labels'): evaluate_bias(test.x, test.target[:-1], clf)


class _Oracle(nn.Module):
    "A stand-in classifier that returns given labels, to check evaluate_bias exactly."
    def __init__(self, t, b):
        super().__init__(); self.config = AttrClassifierConfig(benchmark='fairface'); self.t, self.b = t, b
        self.w = nn.Parameter(torch.zeros(1))
    def predict(self, x, batch_size=512): return self.t, self.b


def test_evaluate_bias_exact_with_known_predictions():
    classes = torch.tensor([0] * 7 + [1] * 4)
    bias = torch.tensor([0, 0, 0, 1, 1, 2, 3] + [3, 3, 3, 3])
    ev = evaluate_bias(torch.zeros(11, 3, 16, 16), classes, _Oracle(torch.tensor([0] * 6 + [1] * 5), bias))
    assert ev['group_counts'].tolist() == [[3, 2, 1, 1], [0, 0, 0, 4]]
    per0 = (1 + 2 + 2 + 1 + 1 + 0) / 7 / 6
    assert abs(ev['bias_score'] - (per0 + 0.5) / 2) < 1e-12
    assert ev['worst_group_share'] == 0 and abs(ev['target_acc'] - 10 / 11) < 1e-12


@pytest.mark.parametrize('name', ['waterbirds', 'celeba', 'fairface'])
def test_bias_score_closed_form_in_correlation(name):
    from invdiff_nb.bias_data import resolve_ratios
    spec = get_spec(name); K = spec.num_bias_values
    for c in (0.0, 0.25, 0.5, 0.8, 0.95, 1.0):
        p = resolve_ratios(spec, correlation=c).view(spec.num_classes, K)
        assert abs(bias_score_from_counts(p)[0] - 2 / K * abs(c - (1 - c) / (K - 1))) < 1e-12
