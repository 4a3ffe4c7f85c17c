"""Tables of lr.log: InvDiff's and JTT's bias score per learning rate, and the criterion of README.md applied to them.

usage: python lr_table.py [lr.log]"""
import sys, json
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else 'lr.log') if l.startswith('{')]
benches = sorted({r['bench'] for r in rows}); seeds = sorted({r['seed'] for r in rows}); lrs = sorted({r['lr'] for r in rows})
val = {(r['bench'], r['seed'], r['lr'], r['method']): r['bias'] for r in rows}
recipe = 0.002
def mean(b, ss, lr, m): return float(np.mean([val[(b, s, lr, m)] for s in ss]))
def gap(b, ss, lr): return float(np.mean([val[(b, s, lr, 'invdiff')] - val[(b, s, lr, 'jtt')] for s in ss]))
for m in ('invdiff', 'jtt'):
    print(f'\n{m}, bias score:\n')
    print('| lr | ' + ' | '.join(f'{b} {s}' for b in benches for s in seeds) + ' | ' + ' | '.join(f'mean {b}' for b in benches) + ' |')
    print('|---' * (1 + len(benches) * (len(seeds) + 1)) + '|')
    for lr in lrs:
        print(f'| {lr:g} | ' + ' | '.join(f'{val[(b, s, lr, m)]:.3f}' for b in benches for s in seeds) + ' | '
              + ' | '.join(f'{mean(b, seeds, lr, m):.3f}' for b in benches) + ' |')
print('\nInvDiff − JTT (paired, mean over seeds):\n')
print('| lr | ' + ' | '.join(benches) + ' |'); print('|---' * (1 + len(benches)) + '|')
for lr in lrs: print(f'| {lr:g} | ' + ' | '.join(f'{gap(b, seeds, lr):+.3f}' for b in benches) + ' |')
halves = [seeds[:2], seeds[2:]]
print('\nThe criterion (README.md), per half of the seeds:\n')
for lr in lrs:
    if lr == recipe: continue
    ok = []
    for ss in halves:
        c1 = all(mean(b, ss, lr, 'invdiff') < mean(b, ss, recipe, 'invdiff') for b in ('fairface', 'waterbirds')) and \
             mean('celeba', ss, lr, 'invdiff') <= mean('celeba', ss, recipe, 'invdiff')
        c2 = gap('fairface', ss, lr) < gap('fairface', ss, recipe)
        ok.append(c1 and c2)
        print(f'- lr {lr:g}, seeds {ss}: (1) {"met" if c1 else "missed"}, (2) {"met" if c2 else "missed"}')
    allmean = float(np.mean([val[(b, s, lr, 'invdiff')] for b in benches for s in seeds]))
    print(f'  -> {"candidate" if all(ok) else "not a candidate"} (mean InvDiff bias over all {allmean:.3f})')
