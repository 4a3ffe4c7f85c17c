"""Stage 2's learning rate at the recipe's cost: InvDiff and the JTT control at several peak learning rates, on development seeds.

usage: python lr.py BENCHES SEEDS LRS OUT.json   (e.g. celeba,fairface,waterbirds 1000,1001,1002,1003 0.002,0.004,0.008)
Each (benchmark, seed) trains or loads the base of notebook 51's cpu profile ($SWEEP_CACHE) and infers the groups once
with the recipe (stage 1 never reads the learning rate). For every learning rate it then fits InvDiff and the JTT
control, both with the recipe at that learning rate (600 steps, cosine, 50 warm-up steps), as notebook 51 fits all its
methods with one config. It prints one JSON line per (learning rate, method): the bias score and FD of 128 images per
class (w = 1), scored by notebook 41's attribute classifier."""
import os, sys, time, json, torch
from invdiff_nb.core import derive_seed, get_device
from invdiff_nb.train import run_concurrently
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.bias_metrics import attribute_classifiers, evaluate_bias, feature_metrics
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, prepare_control
from devbase import sched, dev_base
torch.set_num_threads(int(os.environ.get('THREADS', '2')))
benches, seeds = sys.argv[1].split(','), [int(s) for s in sys.argv[2].split(',')]
lrs = [float(v) for v in sys.argv[3].split(',')]
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}   # notebook 51's groups per class
recipe = dict(steps=600, batch_size=32, signal_timesteps=8, loss_batch_size=512, num_inference_steps=20)   # 51's cpu recipe
dev = get_device(); out = []
for b in benches:
    clf = attribute_classifiers(b, 16, seed=0, profile='cpu', device=dev, verbose=False)
    test = make_benchmark(b, 'test', 16, seed=0, n_per_group=100, device=dev)
    for s in seeds:
        t0 = time.time()
        train, base = dev_base(b, s, dev)
        x, y = train.x, train.target
        cfg = InvDiffConfig(num_groups=GPC[b], seed=s, **recipe)
        g = InvDiff(base, sched(), cfg).infer_groups(x, y)
        jobs = {}
        for lr in lrs:                                   # built one after another (seeded initialisation), trained together
            c = cfg.replace(lr=lr)
            d = InvDiff(base, sched(), c)
            jobs[(lr, 'invdiff')] = (d, lambda d=d: d.fit(x, y, g))
            jobs[(lr, 'jtt')] = prepare_control('jtt', base, sched(), x, y, c, groups=g)
        run_concurrently([job for _, job in jobs.values()])
        def ev(d):
            yy = torch.arange(train.spec.num_classes).repeat_interleave(128)
            xs = d.sample(yy, w=1.0, seed=derive_seed(s, 'eval', 1.0)).clamp(-1, 1)
            return evaluate_bias(xs, yy, clf)['bias_score'], feature_metrics(clf, test.x, xs)['fd']
        res = run_concurrently([lambda d=d: ev(d) for d, _ in jobs.values()])
        for (lr, m), (bs, fd) in zip(jobs, res):
            row = dict(bench=b, seed=s, lr=lr, method=m, bias=bs, fd=fd); out.append(row); print(json.dumps(row), flush=True)
        print(f'# {b} {s}: {time.time() - t0:.0f}s', flush=True)
json.dump(out, open(sys.argv[4], 'w'))
