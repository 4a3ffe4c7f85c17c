"""The table of sweep.py logs with one variant per row: the bias score per (benchmark, seed) and the means.
usage: python budget_table.py budget.log"""
import json,sys
from collections import defaultdict
rows=[json.loads(l) for f in sys.argv[1:] for l in open(f) if l.startswith('{')]
benches=list(dict.fromkeys(r['bench'] for r in rows)); vars_=list(dict.fromkeys(r['var'] for r in rows))
seeds=sorted({r['seed'] for r in rows})
d={(r['var'],r['bench'],r['seed']):r for r in rows}
print('| steps | '+' | '.join(f'{b} {s}' for b in benches for s in seeds)+' | '+' | '.join(f'mean {b}' for b in benches)+' |')
print('|---|'+'---|'*(len(benches)*len(seeds)+len(benches)))
for v in vars_:
    cells=[f"{d[(v,b,s)]['bias']:.3f}" for b in benches for s in seeds]
    means=[sum(d[(v,b,s)]['bias'] for s in seeds)/len(seeds) for b in benches]
    print(f'| {v[1:]} | '+' | '.join(cells)+' | '+' | '.join(f'{m:.3f}' for m in means)+' |')
