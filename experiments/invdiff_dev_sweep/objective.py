"""Development probe of stage 1's grouping objective, on seeds the study of notebook 51 never uses (it uses 0, 1, 2).

usage: python objective.py BENCHES SEEDS OUT.json
For each (benchmark, seed): the base of notebook 51's cpu profile (cached in $SWEEP_CACHE), one stage 1 (the loss
matrices), then the groups twice from the same matrices: group_objective='between' (the library default: mass-weighted
spread, k-means-like) and 'std' (the official objective: the unweighted std of group risks, which favours a small
extreme group). Fits the default recipe on each, plus lam=0 on 'std' groups and the JTT control, and prints one JSON
line per fit: bias score and FD of 128 images per class, minority recall and precision of the groups, group masses."""
import os, sys, time, json, torch
from invdiff_nb.core import derive_seed, get_device
from invdiff_nb.train import TrainConfig, run_concurrently
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.bias_metrics import attribute_classifiers, evaluate_bias, feature_metrics
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, fit_base, minority_stats, prepare_control
torch.set_num_threads(2)
benches = sys.argv[1].split(','); seeds = [int(s) for s in sys.argv[2].split(',')]
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}
recipe = dict(steps=600, batch_size=32, signal_timesteps=8, loss_batch_size=512, num_inference_steps=20)
dev = get_device()
def sched(): return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing'))
out = []
for b in benches:
    clf = attribute_classifiers(b, 16, seed=0, profile='cpu', device=dev, verbose=False)
    test = make_benchmark(b, 'test', 16, seed=0, n_per_group=100, device=dev)
    for s in seeds:
        t0 = time.time()
        train = make_benchmark(b, 'train', 16, seed=s, n=None, device=dev)
        ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(s, 'base-init')); base = UNet(ucfg)
        tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(s, 'base-train'), log_every=50)
        base, _, _ = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1, cache=os.environ.get('SWEEP_CACHE', 'runs/sweep-cache'),
                              name=f'invdiff-base-{b}-16px', seed=s, device=dev)
        base = base.eval().requires_grad_(False)
        cfg = InvDiffConfig(num_groups=GPC[b], seed=s, **recipe)
        spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double()
        mino = (cnt / cnt.sum(1, keepdim=True)).flatten()[train.group.cpu()] < 1 / spec.num_bias_values
        g_between = InvDiff(base, sched(), cfg).infer_groups(train.x, train.target)
        g_std = InvDiff(base, sched(), cfg.replace(group_objective='std')).infer_groups(train.x, train.target, losses=g_between.losses)
        groups = {'between': g_between, 'std': g_std}
        fits = {}
        for gname, g in groups.items():
            d = InvDiff(base, sched(), cfg); fits[f'invdiff_{gname}'] = (d, lambda d=d, g=g: d.fit(train.x, train.target, g), gname)
        d0 = InvDiff(base, sched(), cfg.replace(lam=0.0)); fits['lam0_std'] = (d0, lambda: d0.fit(train.x, train.target, g_std), 'std')
        dj, tj = prepare_control('jtt', base, sched(), train.x, train.target, cfg, groups=g_between); fits['jtt'] = (dj, tj, 'between')
        names = list(fits)
        run_concurrently([fits[n][1] for n in names])
        def ev(n):
            d = fits[n][0]; C = spec.num_classes
            y = torch.arange(C).repeat_interleave(128)
            x = d.sample(y, w=1.0, seed=derive_seed(s, 'eval', 1.0)).clamp(-1, 1)
            return evaluate_bias(x, y, clf)['bias_score'], feature_metrics(clf, test.x, x)['fd']
        res = run_concurrently([lambda n=n: ev(n) for n in names])
        for n, (bs, fd) in zip(names, res):
            g = groups[fits[n][2]]; st = minority_stats(g.W, mino)
            row = dict(bench=b, seed=s, fit=n, bias=bs, fd=fd, recall=st.recall, precision=st.precision,
                       mass=[round(float(m), 3) for m in g.W.sum(0) / len(g.W)])
            out.append(row); print(json.dumps(row), flush=True)
        print(f'# {b} {s}: {time.time()-t0:.0f}s', flush=True)
json.dump(out, open(sys.argv[3], 'w'))
