"""Development probe of stage 2's weighting, on seeds the study of notebook 51 never uses (it uses 0, 1, 2).

usage: SWEEP_CACHE=... python draws.py BENCHES SEEDS [VARIANTS] > LOG   (VARIANTS: comma-separated names, default all)
For each (benchmark, seed): the base of notebook 51's cpu profile (cached in $SWEEP_CACHE), one stage 1 with the
library's defaults, then one module fit per variant below on those groups. Each variant is a draw rule for the batches
and an objective:
- draw rules, all label-free, every class drawn equally often: 'bal' (group-balanced, the recipe's draws: every group
  equally often), 'tilt<b>' (sample i with weight exp(b z_i), z the signal standardised within its class: a soft
  version of JTT's upweighting of the signal's top), 'mix1' (half 'bal', half 'tilt1'), 'max1' (the larger of the two,
  renormalised), 'jtt' (JTT's own weights: the top 10% of each class's signal drawn 10 times as often);
- three rules that read the bias labels, references that ask why JTT works, never methods: 'lab' (every (class, bias)
  group equally often, as the 'balanced' control of notebook 51 draws), 'jttmin' (JTT's weights with the 10x kept only
  on the minority samples of the top 10%), 'randmin' (10x on as many minority samples of each class as 'jttmin' lifts,
  picked at random instead of by the signal);
- objectives: 'groups' (the recipe: V-REx, the mean of the group risks plus lam times their variance, lam = 10), 'one'
  (one group: the plain batch mean, as JTT and the 'balanced' control train) or 'plain' (the plain batch mean plus the
  same penalty lam Var_k R_k over the inferred groups).
Prints one JSON line per fit: bias score and FD of 128 images per class, and `draw_share`, the share of the minority
(rarer than uniform within its class) in the draws, computed from the labels for evaluation only."""
import os, sys, time, json, torch
from invdiff_nb.core import derive_seed
from invdiff_nb.train import TrainConfig, run_concurrently
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.bias_metrics import attribute_classifiers, evaluate_bias, feature_metrics
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, fit_base, group_balanced_probs, condition_ids
torch.set_num_threads(2)
benches = sys.argv[1].split(','); seeds = [int(s) for s in sys.argv[2].split(',')]
VARIANTS = {  # name: (draw rule, tilt b, objective)
    'bal_groups': ('bal', 0, 'groups'), 'mix1_groups': ('mix', 1.0, 'groups'), 'tilt05_groups': ('tilt', 0.5, 'groups'),
    'max1_groups': ('max', 1.0, 'groups'), 'bal_one': ('bal', 0, 'one'), 'mix1_one': ('mix', 1.0, 'one'),
    'tilt05_one': ('tilt', 0.5, 'one'), 'tilt1_one': ('tilt', 1.0, 'one'),
    'bal_plain': ('bal', 0, 'plain'), 'mix1_plain': ('mix', 1.0, 'plain'), 'tilt05_plain': ('tilt', 0.5, 'plain'),
    'jtt_groups': ('jtt', 0, 'groups'), 'jtt_plain': ('jtt', 0, 'plain'),
    'jtt_one': ('jtt', 0, 'one'), 'lab_one': ('lab', 0, 'one'), 'jttmin_one': ('jttmin', 0, 'one'), 'randmin_one': ('randmin', 0, 'one')}
chosen = sys.argv[3].split(',') if len(sys.argv) > 3 else list(VARIANTS)
VARIANTS = {n: VARIANTS[n] for n in chosen}

import threading
import invdiff_nb.invdiff as _inv
_local, _vrex = threading.local(), _inv.vrex_loss
def _vrex_or_plain(losses, W, lam=1.0, min_mass=1e-6, check=True):
    "The library's vrex_loss; in a thread that set _local.plain, its first term is the plain batch mean instead."
    loss, R = _vrex(losses, W, lam, min_mass, check)
    if not getattr(_local, 'plain', False): return loss, R
    return losses.mean() + lam * R.var(unbiased=False), R
_inv.vrex_loss = _vrex_or_plain          # the stage-2 loss looks vrex_loss up in the module at every step
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}
recipe = dict(steps=600, batch_size=32, signal_timesteps=8, loss_batch_size=512, num_inference_steps=20)
def sched(): return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing'))

def per_class(p, ids):
    "Normalise p within each class and give every class the same share of the draws, as the recipe's group-balanced rule does."
    p, out = p.double(), torch.empty(len(p), dtype=torch.float64)
    for v in ids.unique(): m = ids == v; out[m] = p[m] / p[m].sum()
    return out / out.sum()

def draw_probs(rule, b, groups, ids, mino, group, seed):
    s = groups.signal.double(); z = torch.empty_like(s)
    for v in ids.unique(): m = ids == v; z[m] = (s[m] - s[m].mean()) / s[m].std()
    bal, tilt = per_class(group_balanced_probs(groups.W), ids), per_class(torch.exp(b * z), ids)
    jtt = torch.ones(len(s), dtype=torch.float64)             # JTT's weights: the top 10% of each class's signal x 10
    for v in ids.unique():
        idx = (ids == v).nonzero().flatten(); jtt[idx[s[idx].topk(max(1, int(0.1 * len(idx)))).indices]] = 10.0
    if rule in ('bal', 'tilt', 'mix', 'max', 'jtt'):
        return {'bal': bal, 'tilt': tilt, 'mix': 0.5 * bal + 0.5 * tilt, 'max': per_class(torch.maximum(bal, tilt), ids),
                'jtt': per_class(jtt, ids)}[rule]
    if rule == 'lab': return per_class(1.0 / torch.bincount(group)[group].double(), ids)   # labels: a reference
    jttmin = torch.where(mino, jtt, torch.ones_like(jtt))     # labels: JTT's 10x on its minority samples only
    if rule == 'jttmin': return per_class(jttmin, ids)
    g, rnd = torch.Generator().manual_seed(seed), torch.ones_like(jtt)      # rule 'randmin'
    for v in ids.unique():
        m = (ids == v) & mino; k = int((jttmin[m] > 1).sum()); idx = m.nonzero().flatten()
        rnd[idx[torch.randperm(len(idx), generator=g)[:k]]] = 10.0
    return per_class(rnd, ids)

for bench in benches:
    clf = attribute_classifiers(bench, 16, seed=0, profile='cpu', verbose=False)
    test = make_benchmark(bench, 'test', 16, seed=0, n_per_group=100)
    for s in seeds:
        t0 = time.time()
        train = make_benchmark(bench, 'train', 16, seed=s, n=None)
        ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(s, 'base-init')); base = UNet(ucfg)
        tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(s, 'base-train'), log_every=50)
        base, _, _ = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1, cache=os.environ.get('SWEEP_CACHE', 'runs/sweep-cache'),
                              name=f'invdiff-base-{bench}-16px', seed=s)
        base = base.eval().requires_grad_(False)
        cfg = InvDiffConfig(num_groups=GPC[bench], seed=s, **recipe)
        spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double()
        mino = (cnt / cnt.sum(1, keepdim=True)).flatten()[train.group.cpu()] < 1 / spec.num_bias_values
        groups = InvDiff(base, sched(), cfg).infer_groups(train.x, train.target)
        ids, N = condition_ids(train.target), len(train.x)
        fits = {}
        for name, (rule, b, objective) in VARIANTS.items():
            p = draw_probs(rule, b, groups, ids, mino, train.group.cpu(), derive_seed(s, 'randmin'))
            d = InvDiff(base, sched(), cfg)
            if objective == 'plain':
                def job(d=d, p=p):
                    _local.plain = True      # run_concurrently runs each fit in one thread
                    try: return d.fit(train.x, train.target, groups, sample_probs=p)
                    finally: _local.plain = False
            elif objective == 'groups':
                job = lambda d=d, p=(None if rule == 'bal' else p): d.fit(train.x, train.target, groups, sample_probs=p)
            else:
                job = lambda d=d, p=p: d.fit(train.x, train.target, torch.ones(N, 1), sample_probs=p)
            fits[name] = (d, job, float((p * mino.double()).sum()))
        names = list(fits)
        run_concurrently([fits[n][1] for n in names])
        def ev(n):
            d = fits[n][0]; y = torch.arange(spec.num_classes).repeat_interleave(128)
            x = d.sample(y, w=1.0, seed=derive_seed(s, 'eval', 1.0)).clamp(-1, 1)
            return evaluate_bias(x, y, clf)['bias_score'], feature_metrics(clf, test.x, x)['fd']
        for n, (bs, fd) in zip(names, run_concurrently([lambda n=n: ev(n) for n in names])):
            print(json.dumps(dict(bench=bench, seed=s, fit=n, bias=round(bs, 3), fd=round(fd, 2), draw_share=round(fits[n][2], 3))), flush=True)
        print(f'# {bench} {s}: {time.time() - t0:.0f}s', flush=True)
