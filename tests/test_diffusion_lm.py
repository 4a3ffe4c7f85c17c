"Fast tests of invdiff_nb.diffusion_lm: model contract, loss identities, sampler hooks, control, metrics, DiffuSeq encoding."
import pytest
import torch

from invdiff_nb.core import make_generator
from invdiff_nb.ddpm import q_posterior
from invdiff_nb.diffusion_lm import (Anchor, Clamped, ClassifierControl, DLMConfig, DiffusionLM, LatentClassifier,
                                     LatentClassifierConfig, latent_classifier_loss, control_target, dlm_loss, dlm_scheduler,
                                     encode_pairs, field_classes, field_labels, generate, mr_tokens,
                                     nearest_embedding, posterior_mean_var, sample_hooked, seq2seq_vocab, source_mask)
from invdiff_nb.sampling import sample
from invdiff_nb.text import FIELDS, make_corpus, mentions, scan_slots, slot_recall, tokenize


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    m = DiffusionLM(DLMConfig(vocab_size=30, seq_len=12, width=32, layers=1, num_train_timesteps=50)).eval()
    return m, dlm_scheduler(50)


def test_model_contract_and_errors(tiny):
    m, _ = tiny
    x, t = torch.randn(2, 12, 16), torch.tensor([0, 49])
    assert m(x, t).shape == (2, 12, 16) and m(x[:, :7], t).shape == (2, 7, 16)
    assert torch.allclose(m(x, t), m.word_logits(x, t).softmax(-1) @ m.emb.weight)
    with pytest.raises(ValueError, match='longer than the model length'): m(torch.randn(2, 13, 16), t)
    with pytest.raises(ValueError, match='shape'): m(torch.randn(2, 12, 3), t)
    with pytest.raises(ValueError, match='timesteps must be in'): m(x, torch.tensor([0, 50]))
    with pytest.raises(ValueError, match='token ids must be in'): m.embed(torch.tensor([[1, 30]]))
    with pytest.raises(ValueError, match='token ids must be in'): m.embed(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError): DLMConfig(output='nope')
    assert DLMConfig.from_json(DLMConfig(vocab_size=7).to_json()) == DLMConfig(vocab_size=7)


def test_rounding_of_clean_embeddings(tiny):
    m, _ = tiny
    ids = torch.arange(30)[None]
    E = m.emb.weight
    assert torch.equal(nearest_embedding(E[ids], E), E[ids])
    cx = Clamped(m)(torch.randn(2, 12, 16), torch.tensor([3, 4]))
    assert (cx[..., None, :] == E).all(-1).any(-1).all()                  # every output vector is an embedding row


def test_loss_identities(tiny):
    m, sch = tiny
    ids = torch.randint(0, 30, (3, 12), generator=make_generator(0))
    loss, parts = dlm_loss(m, sch, ids, make_generator(1), return_parts=True)
    assert set(parts) == {'mse', 'prior', 'round', 'aux_ce'} and abs(loss.item() - sum(parts.values())) < 1e-4
    assert 'aux_ce' not in dlm_loss(m, sch, ids, make_generator(1), aux_ce=0.0, return_parts=True)[1]
    # an oracle that outputs EMB(w) has zero denoising loss at t=0 (target EMB(w)) but not at t>0 (target noisy x0)
    class Oracle(DiffusionLM):
        def word_logits(self, x_t, t): return 1e4 * torch.nn.functional.one_hot(ids, 30).float()
    o = Oracle(m.config); o.load_state_dict(m.state_dict())
    p0 = dlm_loss(o, sch, ids, make_generator(1), t=torch.zeros(3, dtype=torch.long), return_parts=True)[1]
    p9 = dlm_loss(o, sch, ids, make_generator(1), t=torch.full((3,), 9), return_parts=True)[1]
    assert p0['mse'] < 1e-10 < p9['mse']
    # DiffuSeq: with every position marked source nothing is scored
    all_src = torch.ones(3, 12, dtype=torch.bool)
    assert dlm_loss(m, sch, ids, make_generator(1), src_mask=all_src).item() == 0.0


def test_training_reduces_loss():
    torch.manual_seed(0)
    m, sch = DiffusionLM(DLMConfig(vocab_size=10, seq_len=6, width=32, layers=1, num_train_timesteps=20)), dlm_scheduler(20)
    ids = torch.randint(0, 10, (8, 6), generator=make_generator(0))
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = dlm_loss(m, sch, ids, make_generator(1)).item()
    for i in range(60):
        l = dlm_loss(m, sch, ids, make_generator(i)); opt.zero_grad(); l.backward(); opt.step()
    assert dlm_loss(m, sch, ids, make_generator(1)).item() < 0.7 * first


def test_hooked_sampler_matches_sample_and_hooks(tiny):
    m, sch = tiny
    a = sample(m, sch, (2, 12, 16), num_inference_steps=10, generator=make_generator(3))
    b = sample_hooked(m, sch, (2, 12, 16), [], num_inference_steps=10, generator=make_generator(3))
    assert torch.allclose(a, b, atol=1e-6)
    assert generate(m, sch, 2, 5, clamp=True, generator=make_generator(0)).shape == (2, 12)
    ids = torch.randint(0, 30, (2, 12), generator=make_generator(4))
    mask = torch.zeros(2, 12, dtype=torch.bool); mask[:, 8:] = True
    out = sample_hooked(m, sch, (2, 12, 16), [Anchor(m, sch, ids, mask, noised=False)], num_inference_steps=10, generator=make_generator(3))
    assert torch.equal(out[mask], m.embed(ids)[mask].detach())
    # noised anchors end clean at the last step too
    out = sample_hooked(m, sch, (2, 12, 16), [Anchor(m, sch, ids, mask, noised=True, generator=make_generator(9))],
                        num_inference_steps=10, generator=make_generator(3))
    assert torch.equal(out[mask], m.embed(ids)[mask].detach())


def test_posterior_mean_var_matches_ddpm(tiny):
    _, sch = tiny
    x0, xt = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    mu, var = posterior_mean_var(sch, x0, xt, 7, 6)
    mu_ref, var_ref = q_posterior(x0, xt, torch.tensor([7, 7]), sch.alphas_cumprod)
    assert torch.allclose(mu, mu_ref, atol=1e-5) and abs(var - var_ref.flatten()[0].item()) < 1e-7


def test_classifier_control_moves_towards_target(tiny):
    m, sch = tiny
    torch.manual_seed(0)
    clf = LatentClassifier(LatentClassifierConfig(seq_len=12, num_classes=8, width=32, layers=1, num_train_timesteps=50)).eval()
    sch.set_timesteps(10)
    x_t, x_prev = torch.randn(4, 12, 16), torch.randn(4, 12, 16)
    x0 = m(x_t, torch.full((4,), 20))
    ce = lambda x: torch.nn.functional.cross_entropy(clf(x, torch.full((4,), 15)), torch.full((4,), 5))
    same = ClassifierControl(clf, sch, 5, lr=0.0)(x_prev, 15, x_t=x_t, t=20, pred_x0=x0)
    assert torch.equal(same, x_prev)
    moved = ClassifierControl(clf, sch, 5, lam=0.0, steps=3, lr=0.05)(x_prev, 15, x_t=x_t, t=20, pred_x0=x0)
    assert ce(moved) < ce(x_prev)
    with pytest.raises(ValueError, match='target class'): ClassifierControl(clf, sch, 8)
    # the classifier loss runs and labels are the field values
    mrs = [mr for mr, _ in make_corpus(5, seed=0)]
    y = field_labels(mrs, 'food')
    assert all((mr.get('food') is None) == (int(k) == 0) for mr, k in zip(mrs, y))
    assert torch.isfinite(latent_classifier_loss(m, sch)(clf, (torch.randint(0, 30, (4, 12)), torch.randint(0, 8, (4,))), make_generator(0)))


def test_control_requests_and_metrics():
    assert control_target('food', 'Italian') == field_classes('food').index('Italian') > 0
    with pytest.raises(KeyError, match='unknown E2E field'): control_target('cuisine', 'Italian')
    with pytest.raises(ValueError, match='unknown value'): control_target('food', 'Thai')
    s = tokenize('The Mill is a pub with a high price range and a low customer rating. It is not kid friendly.')
    assert scan_slots(s) == {'name': {'The Mill'}, 'eatType': {'pub'}, 'priceRange': {'high'}, 'customer rating': {'low'},
                             'familyFriendly': {'no'}}
    assert mentions(tokenize('Zizzi is a pub serving Italian food.'), 'food', 'Italian')
    assert mentions(tokenize('zizzi zizzi italian pub pub'), 'food', 'Italian')      # ungrammatical: the scan decides
    assert not mentions(tokenize('Zizzi is a pub serving Indian food.'), 'food', 'Italian')
    assert slot_recall({'name': 'Zizzi', 'food': 'Italian', 'area': 'riverside'}, tokenize('Zizzi serves italian food')) == 2 / 3
    for mr, sent in make_corpus(50, seed=3): assert slot_recall(mr, tokenize(sent)) == 1.0


def test_diffuseq_encoding():
    pairs = make_corpus(20, seed=1)
    v = seq2seq_vocab([s for _, s in pairs])
    ids = encode_pairs(v, pairs, 64)
    assert ids.shape == (20, len(FIELDS) + 64)
    assert [v.words[i] for i in ids[0, :len(FIELDS)]] == mr_tokens(pairs[0][0])
    assert v.decode(ids[0, len(FIELDS):]) == tokenize(pairs[0][1])
    m = source_mask(2, 64)
    assert m.shape == (2, 72) and m[:, :8].all() and not m[:, 8:].any()
    with pytest.raises(ValueError, match='does not fit'): encode_pairs(v, pairs, 10)
    with pytest.raises(ValueError, match='unknown value'): mr_tokens({'name': 'Nowhere'})


def test_self_conditioning_contract_and_errors(tiny):
    from invdiff_nb.diffusion_lm import SelfConditioned, denoiser
    m, sch = tiny
    sc = DiffusionLM(m.config.replace(self_condition=True))
    sc.load_state_dict(m.state_dict(), strict=False)
    x, t = torch.randn(2, 12, 16), torch.tensor([5, 5])
    # zero-initialised extra input: identical to the plain model with or without an estimate
    assert torch.allclose(sc(x, t), m(x, t), atol=1e-6) and torch.allclose(sc(x, t, x0_sc=torch.randn_like(x)), m(x, t), atol=1e-6)
    torch.nn.init.normal_(sc.inp_sc.weight)
    est = torch.randn_like(x)
    assert not torch.allclose(sc(x, t, x0_sc=est), sc(x, t))              # once trained, the estimate matters
    with pytest.raises(ValueError, match='self_condition=False'): m(x, t, x0_sc=est)
    with pytest.raises(ValueError, match='must have the shape'): sc(x, t, x0_sc=est[:, :4])
    w = denoiser(sc)
    assert isinstance(w, SelfConditioned) and denoiser(m) is m and isinstance(denoiser(sc, clamp=True), Clamped)
    a = w(x, torch.tensor([9, 9])); b = w(x, t)
    assert torch.allclose(b, sc(x, t, x0_sc=a))                             # the previous step's x0 is fed in
    assert torch.allclose(w(x, torch.tensor([9, 9])), a)                    # t went up: a new trajectory starts fresh
    # the loss runs (with its gradient-free first pass) and trains the extra input; sampling works end to end
    ids = torch.randint(0, 30, (4, 12), generator=make_generator(0))
    loss = dlm_loss(sc, sch, ids, make_generator(1), self_cond_prob=1.0)
    loss.backward()
    assert torch.isfinite(loss) and sc.inp_sc.weight.grad.abs().sum() > 0
    assert generate(sc, sch, 2, 5, clamp=True, generator=make_generator(0)).shape == (2, 12)
    assert generate(sc, sch, 2, 5, clamp=False, generator=make_generator(0)).shape == (2, 12)


def test_high_noise_timesteps():
    from invdiff_nb.diffusion_lm import train_timesteps
    # p = 0 is the uniform draw, bit for bit (so old runs reproduce); p > 0 moves that share into [from*T, T)
    assert torch.equal(train_timesteps(64, 50, generator=make_generator(2)), torch.randint(0, 50, (64,), generator=make_generator(2)))
    t = train_timesteps(40000, 1000, 0.5, 0.8, make_generator(0))
    assert t.min() >= 0 and t.max() < 1000
    assert abs((t >= 800).float().mean().item() - (0.5 + 0.5 * 0.2)) < 0.01
    assert abs((t < 400).float().mean().item() - 0.5 * 0.4) < 0.01          # the rest stays uniform
    assert train_timesteps(100, 10, 1.0, 0.95, make_generator(0)).min() == 9  # a range that rounds to the last step
    for bad in (dict(high_noise_frac=-0.1), dict(high_noise_frac=2.0), dict(high_noise_from=1.0)):
        with pytest.raises(ValueError, match='high_noise'): train_timesteps(4, 10, **bad)


@pytest.mark.parametrize('prediction_type', ['sample', 'epsilon'])
def test_langevin_corrector_keeps_the_marginal(prediction_type):
    from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
    from invdiff_nb.diffusion_lm import LangevinCorrector, SelfConditioned, denoiser
    sch = GaussianScheduler(SchedulerConfig(num_train_timesteps=100, beta_schedule='sqrt', prediction_type=prediction_type))
    # x0 ~ N(m, s^2): the exact x0 predictor is the posterior mean and p_t = N(sqrt(abar) m, abar s^2 + 1 - abar)
    m_, s_ = -1.0, 0.3
    class Exact(torch.nn.Module):
        def forward(self, x_t, t, cond=None):
            ab = float(sch.alphas_cumprod[int(t[0])]); v = ab * s_ ** 2 + 1 - ab
            x0 = m_ + ab ** 0.5 * s_ ** 2 / v * (x_t - ab ** 0.5 * m_)
            return x0 if prediction_type == 'sample' else (x_t - ab ** 0.5 * x0) / (1 - ab) ** 0.5
    for t in (20, 70):
        ab = float(sch.alphas_cumprod[t]); v = ab * s_ ** 2 + 1 - ab
        x = LangevinCorrector(Exact(), sch, snr=0.1, steps=1000, generator=make_generator(t))(
            1.5 * torch.randn(3000, 8, generator=make_generator(1)), t, x_t=torch.zeros(1))
        assert abs(x.mean().item() - ab ** 0.5 * m_) < 0.03, (t, x.mean())
        assert abs(x.var().item() / v - 1) < 0.05, (t, x.var(), v)
    # no-ops: the call on x_T, levels below t_min, snr 0
    y = torch.randn(4, 8)
    c = LangevinCorrector(Exact(), sch, t_min=50, generator=make_generator(0))
    assert torch.equal(c(y, 60, x_t=None), y) and torch.equal(c(y, 40, x_t=y), y) and not torch.equal(c(y, 60, x_t=y), y)
    assert torch.equal(LangevinCorrector(Exact(), sch, snr=0.0)(y, 60, x_t=y), y)
    with pytest.raises(ValueError, match='snr and steps'): LangevinCorrector(Exact(), sch, steps=-1)
    with pytest.raises(TypeError, match='no pred_eps'): LangevinCorrector(Exact(), object())
    # a self-conditioned model: a second call at the same t continues the trajectory
    sc = DiffusionLM(DLMConfig(vocab_size=30, seq_len=12, width=32, layers=1, num_train_timesteps=50, self_condition=True)).eval()
    torch.nn.init.normal_(sc.inp_sc.weight)
    w, x, t = denoiser(sc), torch.randn(2, 12, 16), torch.tensor([7, 7])
    a = w(x, t)
    assert torch.allclose(w(x, t), sc(x, t, x0_sc=a))
    assert generate(sc, dlm_scheduler(50), 3, 6, snr=0.3, generator=make_generator(0)).shape == (3, 12)


def test_band_timesteps_and_generate_on_them(tiny):
    from invdiff_nb.diffusion_lm import band_timesteps
    ts = band_timesteps(1000)                                   # every level of [600, 1000) and 100 below
    assert len(ts) == 500 and ts[:400] == list(range(999, 599, -1)) and ts[-1] == 0 and len(set(ts)) == 500
    assert all(a > b for a, b in zip(ts, ts[1:])) and all(t < 600 for t in ts[400:])
    few = band_timesteps(50, 0.6, 5, 3)
    assert few[0] == 49 and few[-1] == 0 and sum(t >= 30 for t in few) == 5 and sum(t < 30 for t in few) == 3
    assert band_timesteps(50, 0.6, 1, 0) == [49]
    for kw, msg in [(dict(band_from=0.0), 'band_from'), (dict(band_from=1.5), 'band_from'), (dict(n_band=21), 'n_band'),
                    (dict(n_band=0), 'n_band'), (dict(n_band=True), 'n_band'), (dict(n_rest=31), 'n_rest'), (dict(n_rest=-1), 'n_rest')]:
        with pytest.raises(ValueError, match=msg): band_timesteps(50, **kw)
    m, sch = tiny
    # generate on the even list by hand = generate with num_inference_steps; on the band list it visits exactly the list
    sch.set_timesteps(10); even = sch.timesteps.tolist()
    a = generate(m, sch, 3, 10, generator=make_generator(4))
    b = generate(m, sch, 3, timesteps=even, generator=make_generator(4))
    assert torch.equal(a, b)
    out = generate(m, sch, 3, timesteps=few, snr=0.3, generator=make_generator(5))
    assert out.shape == (3, 12) and sch.timesteps.tolist() == few
    with pytest.raises(ValueError, match='strictly descending'): generate(m, sch, 2, timesteps=few[::-1])
