"""Development sweep for InvDiff's stage-2 recipe, on seeds the study of notebook 51 never uses (it uses 0, 1, 2).

usage: python sweep.py BENCHES SEEDS VARIANTS EXTRA OUT.json
  BENCHES   comma-separated benchmark names, e.g. waterbirds,fairface
  SEEDS     comma-separated seeds, e.g. 1000,1001
  VARIANTS  JSON list of [name, overrides of InvDiffConfig]; 'rep': k re-seeds stage 2 only
  EXTRA     'K:2' also runs every variant with 2 groups per class; anything else: the study's K only
Each (benchmark, seed) trains the base of notebook 51's cpu profile (cached in $SWEEP_CACHE), infers the groups once,
fits every variant on them and prints one JSON line per variant: bias score and FD of 128 images per class."""
import os, sys, time, json, torch, numpy as np
from invdiff_nb.core import derive_seed, get_device
from invdiff_nb.train import TrainConfig, run_concurrently
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.bias_metrics import attribute_classifiers, evaluate_bias, feature_metrics
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, fit_base, minority_stats, prepare_control
torch.set_num_threads(2)
if os.environ.get('CRN') == '1': import crn   # how cosine_shared_noise.log ran (before the library had shared_noise)
benches = sys.argv[1].split(','); seeds = [int(s) for s in sys.argv[2].split(',')]; VARS = json.loads(sys.argv[3])   # list of [name, overrides]
extra = sys.argv[4]
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
        variants = {}
        for K in ([GPC[b]] + ([int(k) for k in extra.split(':')[1:]] if extra.startswith('K') else [])):
            cfg = InvDiffConfig(num_groups=K, seed=s, **recipe)
            deb0 = InvDiff(base, sched(), cfg); g = deb0.infer_groups(train.x, train.target)
            spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double()
            sh = cnt / cnt.sum(1, keepdim=True)
            mino = sh.flatten()[train.group.cpu()] < 1 / spec.num_bias_values
            rec = minority_stats(g.W, mino).recall
            for name, ov in VARS:
                ov = dict(ov); rep = ov.pop('rep', 0)
                d = InvDiff(base, sched(), cfg.replace(**ov, seed=s + 7919 * rep))
                variants[(K, name)] = (d, (lambda d=d, g=g: d.fit(train.x, train.target, g)), rec)
        ks = list(variants)
        run_concurrently([lambda v=variants[k]: v[1]() for k in ks])
        def ev(k):
            d = variants[k][0]; C = train.spec.num_classes
            y = torch.arange(C).repeat_interleave(128)
            x = d.sample(y, w=1.0, seed=derive_seed(s, 'eval', 1.0)).clamp(-1, 1)
            e = evaluate_bias(x, y, clf); fm = feature_metrics(clf, test.x, x)
            return e['bias_score'], fm['fd']
        res = run_concurrently([lambda k=k: ev(k) for k in ks])
        for k, (bs, fd) in zip(ks, res):
            row = dict(bench=b, seed=s, K=k[0], var=k[1], bias=bs, fd=fd, recall=variants[k][2]); out.append(row); print(json.dumps(row), flush=True)
        print(f'# {b} {s}: {time.time()-t0:.0f}s', flush=True)
json.dump(out, open(sys.argv[5], 'w'))
