"""Stage 1's timestep grid, per-timestep z-score and groups per class, on the three benchmarks and development seeds.

usage: python stage1_grid.py BENCHES SEEDS OUT.json   (e.g. celeba,fairface,waterbirds 1000,1001,1002,1003)
Each (benchmark, seed) trains or loads the base of notebook 51's cpu profile ($SWEEP_CACHE), computes the frozen base's
conditional and unconditional losses on the library's 8-point grid (the study's stage 1) and on a 32-point grid, and
prints one JSON line per variant: the minority recall and precision of the inferred groups (labels read for evaluation
only) and the seconds the loss matrices took. A variant is a grid (J8: the study's; J32/4, J32/2, J32: every 4th,
every 2nd and every point of the 32-point grid), with or without a z-score per timestep, and a number of groups per
class (the study's, or 2)."""
import os, sys, time, json, torch
from invdiff_nb.core import derive_seed
from invdiff_nb.train import TrainConfig
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, fit_base, minority_stats, infer_groups, group_signal
torch.set_num_threads(int(os.environ.get('THREADS', '2')))
benches, seeds = sys.argv[1].split(','), [int(s) for s in sys.argv[2].split(',')]
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}   # notebook 51's groups per class
def sched(): return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing'))
out = []
for b in benches:
    for s in seeds:
        train = make_benchmark(b, 'train', 16, seed=s, n=None)
        ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(s, 'base-init')); base = UNet(ucfg)
        tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(s, 'base-train'), log_every=50)
        base, _, _ = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1,
                              cache=os.environ.get('SWEEP_CACHE', 'runs/sweep-cache'), name=f'invdiff-base-{b}-16px', seed=s)
        base = base.eval().requires_grad_(False)
        x, y = train.x, train.target
        spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double()
        mino = (cnt / cnt.sum(1, keepdim=True)).flatten()[train.group.cpu()] < 1 / spec.num_bias_values
        C, secs = {}, {}
        for J in (8, 32):
            d = InvDiff(base, sched(), InvDiffConfig(signal_timesteps=J, seed=s, loss_batch_size=512))
            t0 = time.time(); L = d.loss_matrices(x, y); secs[J] = time.time() - t0
            C[J] = L['cond'] - L['uncond']
        grids = {'J8': (C[8], secs[8]), 'J32/4': (C[32][:, ::4], secs[32] / 4), 'J32/2': (C[32][:, ::2], secs[32] / 2), 'J32': (C[32], secs[32])}
        for g, (S, sec) in grids.items():
            for z in (False, True):
                sig = group_signal(S, zscore=z)
                for K in sorted({GPC[b], 2}):
                    st = minority_stats(infer_groups(sig, num_groups=K, within=y).W, mino)
                    row = dict(bench=b, seed=s, grid=g, J=S.shape[1], z=z, K=K, study_K=K == GPC[b], recall=st.recall,
                               precision=st.precision, seconds=sec, N=len(x))
                    out.append(row); print(json.dumps(row), flush=True)
json.dump(out, open(sys.argv[3], 'w'))
