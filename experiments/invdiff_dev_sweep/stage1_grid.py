"""Stage 1's timestep grid, per-timestep z-score and groups per class, on the three benchmarks and development seeds.

usage: python stage1_grid.py BENCHES SEEDS OUT.json   (e.g. celeba,fairface,waterbirds 1000,1001,1002,1003)
Each (benchmark, seed) trains or loads the base of notebook 51's cpu profile ($SWEEP_CACHE), computes the frozen base's
conditional and unconditional losses on the library's 8-point grid (the study's stage 1) and on a 32-point grid, and
prints one JSON line per variant: the minority recall and precision of the inferred groups (labels read for evaluation
only) and the seconds the loss matrices took. A variant is a grid (J8: the study's; J32/4, J32/2, J32: every 4th,
every 2nd and every point of the 32-point grid), with or without a z-score per timestep, and a number of groups per
class (the study's, or 2)."""
import os, sys, time, json, torch
from invdiff_nb.invdiff import InvDiff, InvDiffConfig, minority_stats, infer_groups, group_signal
from devbase import sched, dev_base
torch.set_num_threads(int(os.environ.get('THREADS', '2')))
benches, seeds = sys.argv[1].split(','), [int(s) for s in sys.argv[2].split(',')]
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}   # notebook 51's groups per class
out = []
for b in benches:
    for s in seeds:
        train, base = dev_base(b, s)
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
