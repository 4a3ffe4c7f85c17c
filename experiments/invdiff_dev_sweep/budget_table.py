"""The table of a stage-2 budget log of sweep.py (variants named s<steps>): the bias score per (benchmark, seed), one
row per budget, and the mean per benchmark.
usage: python budget_table.py budget.log"""
import json, sys
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.startswith('{')]
benches = list(dict.fromkeys(r['bench'] for r in rows)); variants = list(dict.fromkeys(r['var'] for r in rows))
seeds = sorted({r['seed'] for r in rows})
bias = {(r['var'], r['bench'], r['seed']): r['bias'] for r in rows}
print('| steps | ' + ' | '.join(f'{b} {s}' for b in benches for s in seeds) + ' | ' + ' | '.join(f'mean {b}' for b in benches) + ' |')
print('|---|' + '---|' * (len(benches) * len(seeds) + len(benches)))
for v in variants:
    cells = [f'{bias[(v, b, s)]:.3f}' for b in benches for s in seeds]
    means = [sum(bias[(v, b, s)] for s in seeds) / len(seeds) for b in benches]
    print(f'| {v.removeprefix("s")} | ' + ' | '.join(cells) + ' | ' + ' | '.join(f'{m:.3f}' for m in means) + ' |')
