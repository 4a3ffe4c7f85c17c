import json, os, sys, time, numpy as np, torch
nb = json.load(open('../../nbs/15_ddpm_digits.ipynb'))
g = {}
for c in nb['cells']:
    if c['cell_type'] != 'code': continue
    if c['id'] == 'c013': break
    src = ''.join(c['source'])
    if c['id'] == 'c002': src = 'profile="cpu"; seed=0; out_dir="/tmp/ode_gap_out15"'
    if c['id'] == 'c004':
        import os
        src += "\nimport os\nR = dict(R, steps=int(os.environ['STEPS'])); print('steps', R['steps'])"
    exec(compile(src, c['id'], 'exec'), g)
from invdiff_nb.sampling import sample
from invdiff_nb.ddpm import spaced_timesteps
from invdiff_nb.ddpm import GaussianScheduler
from invdiff_nb.core import make_generator, derive_seed
model, scheduler, ev, n_anc, P, unet_cfg = g['model'], g['scheduler'], g['ev'], g['n_anc'], g['P'], g['unet_cfg']
null = torch.full((n_anc,), model.null_class, dtype=torch.long)
shape = (n_anc, unet_cfg.in_channels, P.image_size, P.image_size)
ref = ev.reference(n_anc, make_generator(derive_seed(0, 'reference')))
def fd(x): return ev.evaluate(x.cpu())['fd']
res = {}
for name, smp, key in [('dpmpp20', 'dpmpp_2m', 'dpmpp'), ('sde20', 'dpmpp_2m_sde', 'dpmpp-sde')]:
    res[name] = [fd(sample(model, scheduler, shape, sampler=smp, cond=null, timesteps=spaced_timesteps(P.num_train_timesteps, 20, 'trailing'),
                     generator=make_generator(derive_seed(0, key, 20, k)))) for k in range(6)]
    print(name, np.round(res[name], 2), np.mean(res[name]), flush=True)
res['anc'] = []
for k in range(int(os.environ.get('NANC', 3))):
    t0 = time.time()
    gen = make_generator(derive_seed(0, 'ancestral')) if k == 0 else make_generator(derive_seed(0, 'ancestral', k))
    res['anc'].append(fd(sample(model, scheduler, shape, sampler='ddpm', cond=null, generator=gen)))
    print('anc', k, res['anc'][-1], time.time() - t0, flush=True)
print('anc', np.round(res['anc'], 2), np.mean(res['anc']), np.std(res['anc'], ddof=1))
json.dump(res, open('ode_vs_ancestral_'+os.environ['STEPS']+'.json', 'w'))
