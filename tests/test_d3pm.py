"Unit tests of invdiff_nb.d3pm: exact identities, enumeration checks of the posterior and the ELBO, bad input."
import itertools, math
import pytest
import torch
import torch.nn.functional as F

from invdiff_nb.d3pm import (D3PMConfig, D3PMScheduler, DigitDenoiser, DigitNetConfig, absorbing_Q, check_stochastic,
                             cumulative_Q, d3pm_betas, d3pm_sample, elbo_bpd, enumerate_exact, gaussian_Q, gumbel_sample,
                             independent_bpd, quantize, transition_matrices, uniform_Q, DEFAULT_SCHEDULE)

KINDS = ('uniform', 'absorbing', 'gaussian')


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('K', [2, 3, 5])
def test_rows_sum_to_one_and_closed_form_equals_product(kind, K):
    Q, Qbar = transition_matrices(kind, d3pm_betas(DEFAULT_SCHEDULE[kind], 40), K)
    for M in (Q, Qbar):
        assert (M >= 0).all()
        assert torch.allclose(M.sum(-1), torch.ones(M.shape[:-1], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(Qbar, cumulative_Q(Q), atol=1e-12)


def test_gaussian_is_doubly_stochastic_and_prefers_neighbours():
    Q = gaussian_Q(d3pm_betas('linear', 8), 6)
    assert torch.allclose(Q, Q.transpose(-1, -2))
    assert (Q[:, 2, 3] > Q[:, 2, 5]).all()


@pytest.mark.parametrize('T', [1, 7, 50])
def test_absorbing_mask_probability_is_t_over_T(T):
    s = D3PMScheduler(num_categories=3, num_train_timesteps=T, transition='absorbing')
    p_mask = s.Qbar[:, :3, 3]                                # (T, K): code t -> paper t + 1
    expect = (torch.arange(1, T + 1, dtype=torch.float64) / T)[:, None].expand(T, 3)
    assert torch.allclose(p_mask, expect, atol=1e-12)
    x0 = torch.randint(0, 3, (20000,), generator=torch.Generator().manual_seed(0))
    xt = s.add_noise(x0, T // 2, torch.Generator().manual_seed(1))
    assert abs((xt == 3).double().mean().item() - (T // 2 + 1) / T) < 0.015
    assert ((xt == x0) | (xt == 3)).all()


@pytest.mark.parametrize('kind', KINDS)
def test_posterior_is_bayes_rule_by_enumeration(kind):
    s = D3PMScheduler(num_categories=3, num_train_timesteps=5, transition=kind)
    for t in range(1, 5):
        for a in range(3):
            for b in range(s.num_states):
                if s.Qbar[t, a, b] == 0: continue
                joint = torch.stack([s.Q[t, j, b] * s.Qbar[t - 1, a, j] for j in range(s.num_states)])
                got = s.q_posterior_logits(torch.tensor([a]), torch.tensor([b]), t, torch.float64)[0].exp()
                assert torch.allclose(got, joint / joint.sum(), atol=1e-12)
    # at code t = 0 the "previous" sample is x0 itself
    post0 = s.q_posterior_logits(torch.tensor([2]), torch.tensor([1]), 0, torch.float64)[0].exp()
    assert torch.equal(post0, F.one_hot(torch.tensor(2), s.num_states).double())


def _tabular(table, S, D):
    def f(x, t, c=None): return table[t, (x * S ** torch.arange(D - 1, -1, -1)).sum(-1)]
    return f


@pytest.mark.parametrize('kind', KINDS)
def test_elbo_bounds_exact_likelihood_and_is_tight_for_true_reverse(kind):
    K, D, T = 3, 2, 4
    s = D3PMScheduler(num_categories=K, num_train_timesteps=T, transition=kind); S = s.num_states
    g = torch.Generator().manual_seed(0)
    rand = _tabular(torch.randn(T, S ** D, D, K, generator=g, dtype=torch.float64) * 2, S, D)
    x0s, nll, nelbo = enumerate_exact(rand, s, D)
    assert len(x0s) == K ** D
    assert torch.allclose(torch.logsumexp(-nll, 0), torch.zeros((), dtype=torch.float64), atol=1e-10)  # p sums to 1
    assert (nelbo - nll >= -1e-10).all() and (nelbo - nll).min() > 1e-3                            # a strict bound here
    # the true reverse process of a factorised data distribution: equality for every x0
    pi = torch.softmax(torch.randn(D, K, generator=g, dtype=torch.float64), -1)
    states = torch.tensor(list(itertools.product(range(S), repeat=D)))
    table = pi.log().expand(T, S ** D, D, K).clone()
    for d in range(D): table[0, :, d, :] = torch.log_softmax(pi[d].log() + s.log_Qbar[0][:K, states[:, d]].T, -1)
    x0s, nll, nelbo = enumerate_exact(_tabular(table, S, D), s, D, log_prior=(pi @ s.Qbar[-1][:K]).log())
    assert torch.allclose(nelbo, nll, atol=1e-9)
    assert torch.allclose(nll, -pi.log().gather(1, x0s.T).sum(0), atol=1e-9)


def test_elbo_bpd_matches_exact_elbo_in_expectation():
    "The sampled full ELBO of elbo_bpd averages to the exact (enumerated) ELBO."
    K, D, T = 3, 2, 4
    s = D3PMScheduler(num_categories=K, num_train_timesteps=T, transition='uniform'); S = s.num_states
    table = torch.randn(T, S ** D, D, K, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    model = _tabular(table, S, D)
    x0s, _, nelbo = enumerate_exact(model, s, D)
    x0 = x0s[4:5].expand(4000, D)
    got = elbo_bpd(model, s, x0, torch.Generator().manual_seed(0), batch_size=4000)['bpd']
    assert abs(got - nelbo[4].item() / (D * math.log(2))) < 0.02


@pytest.mark.parametrize('kind', KINDS)
def test_oracle_sampler_recovers_x0_with_and_without_skipping(kind):
    target = torch.randint(0, 3, (4, 6), generator=torch.Generator().manual_seed(0))
    oracle = lambda x, t, c=None: F.one_hot(target, 3).float() * 50
    s = D3PMScheduler(num_categories=3, num_train_timesteps=12, transition=kind)
    for n in (12, 5, 1):
        assert torch.equal(d3pm_sample(oracle, s, (4, 6), torch.Generator().manual_seed(1), num_inference_steps=n), target)
        s.set_timesteps(n)
        assert s.timesteps[0] == 11 and len(s.timesteps) == n and (n == 1 or s.timesteps[-1] == 0)
    s.set_timesteps(12)
    assert s.timesteps.tolist() == list(range(11, -1, -1))   # restored after sampling


def test_step_contract():
    s = D3PMScheduler(num_categories=4, num_train_timesteps=10, transition='absorbing')
    x = torch.full((3, 5), 4)
    out = s.step(torch.randn(3, 5, 4), 9, x, torch.Generator().manual_seed(0))
    from invdiff_nb.ddpm import StepOutput
    assert isinstance(out, StepOutput)
    assert out.prev_sample.shape == x.shape and out.prev_sample.dtype == torch.long and out.pred_x0.shape == x.shape
    assert (out.prev_sample <= 4).all()
    s.set_timesteps(4)
    assert s.timesteps[0] == 9 and s.timesteps[-1] == 0 and len(s.timesteps) == 4
    with pytest.raises(ValueError, match='not one of the scheduler timesteps'): s.step(torch.randn(3, 5, 4), 5, x)


def test_gumbel_sample_frequencies():
    p = torch.tensor([0.2, 0.5, 0.3])
    d = gumbel_sample(p.log().expand(30000, 3), torch.Generator().manual_seed(0))
    assert (torch.bincount(d, minlength=3) / 30000. - p).abs().max() < 0.01


@pytest.mark.parametrize('kind', KINDS)
def test_loss_trains_digit_denoiser(kind):
    s = D3PMScheduler(num_categories=2, num_train_timesteps=10, transition=kind)
    net = DigitDenoiser(DigitNetConfig(num_states=s.num_states, num_categories=2, channels=16, num_blocks=1))
    x0 = torch.randint(0, 2, (8, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    loss = s.loss(net, x0, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    per = s.loss(net, x0, torch.Generator().manual_seed(0), reduction='none')
    assert per.shape == (8,)


def test_quantize_and_independent_baseline():
    x = torch.tensor([-1., -0.51, -0.49, 0., 0.49, 0.51, 1.])
    assert quantize(x, 2).tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert quantize(x, 4).tolist() == [0, 0, 1, 2, 2, 3, 3]
    u = torch.randint(0, 4, (40000, 2), generator=torch.Generator().manual_seed(0))
    assert abs(independent_bpd(u, 4) - 2) < 1e-3
    const = torch.zeros(10, 3, dtype=torch.long)
    assert independent_bpd(const, 2) == 0.0
    with pytest.raises(ValueError, match='float images'): quantize(torch.zeros(3, dtype=torch.long), 2)


# ---- bad input --------------------------------------------------------------------------------------------------

def test_tokens_outside_range_are_rejected():
    s = D3PMScheduler(num_categories=3, num_train_timesteps=5, transition='uniform')
    with pytest.raises(ValueError, match=r'token 3 outside \[0, 3\)'): s.add_noise(torch.tensor([[0, 3]]), 1)
    with pytest.raises(ValueError, match='outside'): s.add_noise(torch.tensor([[-1, 0]]), 1)
    with pytest.raises(ValueError, match='integer tensor'): s.add_noise(torch.tensor([[0.5, 1.]]), 1)
    sa = D3PMScheduler(num_categories=3, num_train_timesteps=5, transition='absorbing')
    with pytest.raises(ValueError, match='outside'): sa.loss(lambda x, t, c: torch.zeros(*x.shape, 3), torch.tensor([[3, 0]]))  # the mask is not data
    with pytest.raises(ValueError, match=r't must lie in \[0, 5\)'): s.add_noise(torch.tensor([[0, 1]]), 5)
    net = DigitDenoiser(DigitNetConfig(num_states=3, num_categories=2, channels=16, num_blocks=1))
    with pytest.raises(ValueError, match='outside'): net(torch.full((1, 1, 4, 4), 3), torch.tensor([0]))


def test_K_mismatch_between_data_model_and_scheduler():
    s = D3PMScheduler(num_categories=4, num_train_timesteps=5, transition='uniform')
    net = DigitDenoiser(DigitNetConfig(num_states=4, num_categories=2, channels=16, num_blocks=1))   # predicts K=2
    with pytest.raises(ValueError, match='disagree on K'): s.loss(net, torch.randint(0, 4, (2, 1, 4, 4)))
    with pytest.raises(ValueError, match='disagree on K'): s.step(torch.randn(2, 3, 2), 4, torch.zeros(2, 3, dtype=torch.long))
    s2 = D3PMScheduler(num_categories=2, num_train_timesteps=5, transition='uniform')
    with pytest.raises(ValueError, match='outside'): s2.loss(net, torch.randint(2, 4, (2, 1, 4, 4)))  # 4-level data, K=2


def test_non_stochastic_custom_matrices_are_rejected():
    with pytest.raises(ValueError, match='not row-stochastic'):
        D3PMScheduler(num_categories=2, num_train_timesteps=3, Q=torch.tensor([[0.9, 0.2], [0.5, 0.5]]))
    with pytest.raises(ValueError, match='negative'):
        D3PMScheduler(num_categories=2, num_train_timesteps=3, Q=torch.tensor([[1.2, -0.2], [0.5, 0.5]]))
    with pytest.raises(ValueError, match='square'): check_stochastic(torch.ones(2, 3) / 3)
    with pytest.raises(ValueError, match='non-finite'): check_stochastic(torch.tensor([[float('nan'), 1.], [0., 1.]]))
    with pytest.raises(ValueError, match='matrices but num_train_timesteps'):
        D3PMScheduler(num_categories=2, num_train_timesteps=3, Q=torch.eye(2).expand(4, 2, 2))
    with pytest.raises(ValueError, match='num_categories=5'): D3PMScheduler(num_categories=5, num_train_timesteps=3, Q=torch.eye(2))
    # a valid custom matrix works and its Qbar is the explicit product
    Q = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    s = D3PMScheduler(num_categories=2, num_train_timesteps=4, Q=Q)
    assert s.config.transition == 'custom' and s.mask_index == 2
    assert torch.allclose(s.Qbar[-1], torch.linalg.matrix_power(Q.double(), 4))


def test_unknown_names_and_config_round_trip():
    with pytest.raises(ValueError, match='unknown transition'): D3PMScheduler(num_categories=3, transition='blur')
    with pytest.raises(ValueError, match='unknown D3PM schedule'): D3PMScheduler(num_categories=3, schedule='sigmoid')
    with pytest.raises(ValueError, match='num_categories must be'): D3PMScheduler(num_categories=1)
    cfg = D3PMConfig(num_categories=5, num_train_timesteps=7, transition='gaussian', beta_end=2.0)
    assert D3PMConfig.from_json(cfg.to_json()) == cfg
    assert torch.equal(D3PMScheduler(cfg).Q, D3PMScheduler(D3PMConfig.from_json(cfg.to_json())).Q)


def test_posterior_agrees_with_diffusers_vq_diffusion():
    from diffusers import VQDiffusionScheduler
    K, T = 3, 8
    vq = VQDiffusionScheduler(num_vec_classes=K + 1, num_train_timesteps=T)
    a, b, c = (v.double().exp() for v in (vq.log_at, vq.log_bt, vq.log_ct))
    Q = torch.zeros(T, K + 1, K + 1, dtype=torch.float64)
    Q[:, :K, :K] = a[:, None, None] * torch.eye(K, dtype=torch.float64) + b[:, None, None]
    Q[:, :K, K], Q[:, K, K] = c[:, None], 1
    ours = D3PMScheduler(num_categories=K, num_train_timesteps=T, Q=Q)
    x0 = torch.arange(K).repeat_interleave(K + 1)[None]; xt = torch.arange(K + 1).repeat(K)[None]
    for t in range(1, T):
        log_p0 = F.one_hot(x0, K).float().clamp_min(1e-30).log().permute(0, 2, 1)
        theirs = torch.log_softmax(vq.q_posterior(log_p0, xt, t), 1).exp().permute(0, 2, 1).double()
        assert torch.allclose(theirs, ours.q_posterior_logits(x0, xt, t, torch.float64).exp(), atol=1e-5)


# ---- characters (invdiff_nb.d3pm_text) ---------------------------------------------------------------------------

from invdiff_nb.d3pm_text import CharNetConfig, CharTransformer, CharVocab, bigram_bpc, char_chunks, unigram_bpc


def test_char_vocab_chunks_and_errors():
    v = CharVocab.build(['ab c', 'ca'])
    assert v.chars == '\n abc' and v.decode(v.encode('c ab')) == 'c ab'
    assert char_chunks(['ab c', 'ca'], v, 4).tolist() == [v.encode('ab c').tolist(), v.encode('\nca\n').tolist()]
    with pytest.raises(ValueError, match='not in the vocabulary'): v.encode('abz')
    with pytest.raises(ValueError, match='outside'): v.decode([5])
    with pytest.raises(ValueError, match='fewer than one chunk'): char_chunks(['a'], v, 10)


def test_ngram_baselines_closed_form():
    tr = torch.tensor([[0, 1, 0, 1, 0, 1]]); te = torch.tensor([[0, 1, 0, 1]])
    assert abs(unigram_bpc(tr, te, 2, alpha=0) - 1.0) < 1e-12
    # bigram: first char by the unigram (1 bit), then three deterministic transitions (~0 bits)
    assert abs(bigram_bpc(tr, te, 2, alpha=1e-12) - 1.0 / 4) < 1e-6
    assert bigram_bpc(tr, te, 2) < unigram_bpc(tr, te, 2)


def test_char_transformer_shapes_and_bad_input():
    net = CharTransformer(CharNetConfig(num_states=6, num_categories=5, length=8, d_model=16, n_layers=1, n_heads=2))
    assert net(torch.randint(0, 6, (3, 8)), torch.tensor([0, 1, 2])).shape == (3, 8, 5)
    with pytest.raises(ValueError, match='outside'): net(torch.full((1, 8), 6), torch.tensor([0]))
    with pytest.raises(ValueError, match='expects integer tokens'): net(torch.zeros(1, 9, dtype=torch.long), torch.tensor([0]))
    s = D3PMScheduler(num_categories=4, num_train_timesteps=5, transition='absorbing')
    with pytest.raises(ValueError, match='disagree on K'): s.loss(net, torch.randint(0, 4, (2, 8)))
    s5 = D3PMScheduler(num_categories=5, num_train_timesteps=5, transition='absorbing', hybrid_coeff=0.01)
    loss = s5.loss(net, torch.randint(0, 5, (2, 8)), torch.Generator().manual_seed(0))
    loss.backward(); assert torch.isfinite(loss)


def test_one_category_is_refused_everywhere():
    "K = 1 has nothing to diffuse: every entry point says so instead of building degenerate matrices."
    from invdiff_nb.d3pm import absorbing_Q, check_categories, tokens_to_image, uniform_Q
    from invdiff_nb.d3pm_text import CharNetConfig
    b = d3pm_betas('cosine', 5)
    for f in (lambda: D3PMConfig(num_categories=1), lambda: uniform_Q(b, 1), lambda: absorbing_Q(b, 1), lambda: gaussian_Q(b, 1),
              lambda: transition_matrices('uniform', b, 1), lambda: DigitNetConfig(num_categories=1), lambda: quantize(torch.zeros(2), 1),
              lambda: tokens_to_image(torch.zeros(1, 1, 2, 2, dtype=torch.long), 1), lambda: CharNetConfig(num_categories=1),
              lambda: check_categories(2.0)):
        with pytest.raises(ValueError, match=r'must be an int >= 2'): f()
    with pytest.raises(ValueError, match=r'num_states \(3\) must be >= num_categories \(5\)'): DigitNetConfig(num_states=3, num_categories=5)
    with pytest.raises(ValueError, match='hybrid_coeff must be >= 0'): D3PMConfig(hybrid_coeff=-0.1)
    with pytest.raises(ValueError, match='num_train_timesteps must be a positive int'): D3PMConfig(num_train_timesteps=0)
