"""The base model of notebook 51's cpu profile for one (benchmark, development seed), trained or loaded from $SWEEP_CACHE.
The older scripts here spell the same steps out inline; new ones import them from here."""
import os, torch
from invdiff_nb.core import derive_seed
from invdiff_nb.train import TrainConfig
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.bias_data import make_benchmark
from invdiff_nb.invdiff import fit_base

def sched():
    "Notebook 51's schedule: zero terminal SNR, v-prediction, trailing timesteps."
    return GaussianScheduler(SchedulerConfig(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type='v_prediction',
                                             timestep_spacing='trailing'))

def dev_base(bench: str, seed: int, device=None):
    "The training split and the frozen base (eval mode) of notebook 51's cpu profile for (bench, seed)."
    train = make_benchmark(bench, 'train', 16, seed=seed, n=None, device=device or 'cpu')
    ucfg = unet_config('smoke', in_channels=3, image_size=16, num_classes=train.spec.num_classes, num_train_timesteps=1000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, 'base-init')); base = UNet(ucfg)
    tcfg = TrainConfig(steps=1200, lr=2e-3, warmup_steps=100, lr_schedule='cosine', seed=derive_seed(seed, 'base-train'), log_every=50)
    base, _, _ = fit_base(base, sched(), train.x, train.target, tcfg, 32, cond_drop_prob=0.1,
                          cache=os.environ.get('SWEEP_CACHE', 'runs/sweep-cache'), name=f'invdiff-base-{bench}-16px', seed=seed, device=device)
    return train, base.eval().requires_grad_(False)
