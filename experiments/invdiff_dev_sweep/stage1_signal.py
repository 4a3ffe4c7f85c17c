"""Stage 1 on one benchmark and (development) seed: how well the contrast signal ranks and groups the minority for
several timestep ranges, with and without a per-timestep z-score, from a J-point grid.
usage: python stage1_signal.py BENCH SEED J  (celeba 1000 32 wrote celeba_signal.log)"""
import os, sys, torch, numpy as np
from invdiff_nb.core import derive_seed, get_device
from invdiff_nb.train import TrainConfig
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, fit_base, minority_stats, infer_groups, topk_share, condition_ids
torch.set_num_threads(2)
b, s, J = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def sched(): return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing'))
train = make_benchmark(b, 'train', 16, seed=s, n=None)
ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(derive_seed(s, 'base-init')); base = UNet(ucfg)
tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(s, 'base-train'), log_every=50)
base, _, loaded = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1, cache=os.environ.get('SWEEP_CACHE', 'runs/sweep-cache'), name=f'invdiff-base-{b}-16px', seed=s)
print('loaded', loaded)
base = base.eval().requires_grad_(False)
deb = InvDiff(base, sched(), InvDiffConfig(signal_timesteps=J, seed=s))
x, y = train.x, train.target
Lc, Lu = deb.losses(x, y), deb.losses(x, y, unconditional=True)
ts = deb.timesteps()
spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double(); sh = cnt / cnt.sum(1, keepdim=True)
mino = sh.flatten()[train.group.cpu()] < 1 / spec.num_bias_values
ids = condition_ids(y)
def within_topk(sig): return float(np.mean([topk_share(sig[ids == c], mino[ids == c]) for c in ids.unique()]))
C = Lc - Lu
masks = {'all': ts >= 0, 't<250': ts < 250, 't<500': ts < 500, '250-750': (ts >= 250) & (ts < 750), 't>=500': ts >= 500}
for name, m in masks.items():
    for zs in (False, True):
        S = C[:, m]
        if zs: S = (S - S.mean(0)) / S.std(0)
        sig = S.mean(1)
        recs = {K: minority_stats(infer_groups(sig, num_groups=K, within=y).W, mino).recall for K in (2, 4)}
        print(f'{b} J={J} {name:8s} z={zs:d} n_t={int(m.sum()):2d} topk {within_topk(sig):.3f} recall K2 {recs[2]:.2f} K4 {recs[4]:.2f}', flush=True)
# conditional loss only
for name, m in masks.items():
    sig = Lc[:, m].mean(1)
    print(f'{b} J={J} condloss {name:8s} topk {within_topk(sig):.3f}')
