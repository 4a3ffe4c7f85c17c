"""Stage 1 without the loss signal: does clustering the frozen base's own features within each class find the minority?
Development seeds only (the study of notebook 51 uses 0, 1, 2).

usage: SWEEP_CACHE=... python features.py BENCHES SEEDS > LOG   (celeba,fairface,waterbirds 1000,1001 wrote features.log)
For each (benchmark, seed): the base of notebook 51's cpu profile (cached in $SWEEP_CACHE), its mid-block activations,
averaged over space, for every training image noised to t = 100, 300 and 600 (one fixed noise draw); within each class
the activations are z-scored, projected on their top 8 principal directions and split by k-means (best of 5 starts) into
2 and into the study's number of groups per class. Prints the minority recall / precision of the minority-dominated
groups (labels used for evaluation only), as notebook 51 reports them for its own stage 1."""
import os, sys, torch, numpy as np
import torch.nn.functional as F
from invdiff_nb.core import derive_seed
from invdiff_nb.train import TrainConfig
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.invdiff import fit_base, infer_groups, minority_stats, condition_ids
torch.set_num_threads(2)
benches = sys.argv[1].split(','); seeds = [int(s) for s in sys.argv[2].split(',')]
GPC = {'waterbirds': 2, 'celeba': 4, 'fairface': 4}
def sched(): return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction', timestep_spacing='trailing'))
def kmeans(X, K, iters=50, seed=0):
    g = torch.Generator().manual_seed(seed); best = None
    for r in range(5):
        C = X[torch.randperm(len(X), generator=g)[:K]].clone()
        for _ in range(iters):
            a = torch.cdist(X, C).argmin(1)
            C = torch.stack([X[a == k].mean(0) if (a == k).any() else C[k] for k in range(K)])
        sse = ((X - C[a]) ** 2).sum()
        if best is None or sse < best[0]: best = (sse, a)
    return best[1]
for bench in benches:
    for s in seeds:
        train = make_benchmark(bench, 'train', 16, seed=s, n=None)
        ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(s, 'base-init')); base = UNet(ucfg)
        tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(s, 'base-train'), log_every=50)
        base, _, _ = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1, cache=os.environ['SWEEP_CACHE'], name=f'invdiff-base-{bench}-16px', seed=s)
        base = base.eval().requires_grad_(False)
        spec = train.spec; cnt = train.group_counts().view(spec.num_classes, spec.num_bias_values).double()
        mino = (cnt / cnt.sum(1, keepdim=True)).flatten()[train.group.cpu()] < 1 / spec.num_bias_values
        ids = condition_ids(train.target); sc = sched()
        feats = {}
        hook = base.mid[-1].register_forward_hook(lambda m, i, o: feats.__setitem__('h', o))
        for t in (100, 300, 600):
            g = torch.Generator().manual_seed(derive_seed(s, 'probe'))
            H = []
            with torch.no_grad():
                for i in range(0, len(train.x), 512):
                    x0 = train.x[i:i + 512]; n = torch.randn(x0.shape, generator=g)
                    tt = torch.full((len(x0),), t, dtype=torch.long)
                    base(sc.add_noise(x0, n, tt), tt, train.target[i:i + 512]); H.append(feats['h'].mean((2, 3)))
            H = torch.cat(H).double()
            res = []
            for K in (2, GPC[bench]):
                W = torch.zeros(len(H), 0)
                cols = []
                for v in ids.unique():
                    m = ids == v; X = H[m]; X = (X - X.mean(0)) / X.std(0).clamp_min(1e-8)
                    U, S, V = torch.pca_lowrank(X, q=8, center=False)
                    Z = X @ V[:, :8]
                    a = kmeans(Z.float(), K)
                    cols.append((m, a))
                Wf = torch.zeros(len(H), K * len(cols))
                for j, (m, a) in enumerate(cols): Wf[m.nonzero().flatten(), j * K + a] = 1
                r = minority_stats(Wf, mino); res.append(f'K{K} {r.recall:.2f}/{r.precision:.2f}')
            print(bench, s, f't={t}', ' '.join(res), flush=True)
        hook.remove()
