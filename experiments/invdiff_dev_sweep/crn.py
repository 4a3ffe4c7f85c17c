import os, torch
import invdiff_nb.invdiff as I
from invdiff_nb.ddpm import diffusion_loss
def crn_loss_fn(scheduler, W, lam=1.0, cond_drop_prob=0.1):
    def loss_fn(model, batch, generator):
        x0, cond, idx = batch
        null = getattr(model, 'null_class', None) if cond is not None and cond_drop_prob > 0 else None
        Wb = W.to(x0.device)[idx.to(x0.device)]
        h = Wb.argmax(1)
        oh = torch.nn.functional.one_hot(h, Wb.shape[1])
        rank = ((oh.cumsum(0) - 1) * oh).sum(1)            # position of each sample within its group in this batch
        M = int(rank.max()) + 1
        ts = torch.randint(0, scheduler.config.num_train_timesteps, (M,), generator=generator, device=generator.device).to(x0.device)
        eps = torch.randn((M, *x0.shape[1:]), generator=generator, device=generator.device).to(x0.device)
        l = diffusion_loss(model, scheduler, x0, cond, generator, t=ts[rank], noise=eps[rank],
                           cond_drop_prob=cond_drop_prob if cond is not None else 0.0, null_cond=null, reduction='none')
        return I.vrex_loss(l, Wb, lam, check=False)[0]
    return loss_fn
if os.environ.get('CRN') == '1':
    I.invdiff_loss_fn = crn_loss_fn; print('# CRN loss on')
