"""The table of stage1_grid.py's logs: mean minority recall (precision) over the seeds, per benchmark and variant.
usage: python stage1_grid_table.py stage1_grid_a.log stage1_grid_b.log"""
import sys, json
from collections import defaultdict
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.startswith('{')]
benches = list(dict.fromkeys(r['bench'] for r in rows))
cell, secs, seeds = defaultdict(list), defaultdict(list), defaultdict(set)
for r in rows:
    for k in (['study'] if r['study_K'] else []) + ([2] if r['K'] == 2 else []):   # on waterbirds the study's K is 2
        v = (r['grid'], r['z'], k)
        cell[(v, r['bench'])].append((r['recall'], r['precision'])); secs[(v, r['bench'])].append(r['seconds'])
    seeds[r['bench']].add(r['seed'])
variants = list(dict.fromkeys(v for v, _ in cell))
print(f"Mean over seeds {', '.join(f'{b} {sorted(seeds[b])}' for b in benches)}; recall (precision); seconds: the loss matrices of one (benchmark, seed) on 2 cores shared by two runs.\n")
print('| grid | z-score | groups per class | ' + ' | '.join(f'{b} recall' for b in benches) + ' | seconds (celeba) | meets the criterion |')
print('|---|---|---|' + '---|' * (len(benches) + 2))
base = {b: sum(x for x, _ in cell[(('J8', False, 'study'), b)]) / len(cell[(('J8', False, 'study'), b)]) for b in benches}
for v in variants:
    g, z, K = v
    rec = {b: sum(x for x, _ in cell[(v, b)]) / len(cell[(v, b)]) for b in benches}
    pre = {b: sum(p for _, p in cell[(v, b)]) / len(cell[(v, b)]) for b in benches}
    J = {'J8': 8, 'J32/4': 8, 'J32/2': 16, 'J32': 32}[g]
    ok = all(rec[b] >= 0.8 for b in benches) and all(rec[b] >= base[b] - 0.05 for b in benches if b != 'celeba') and J <= 16
    s = secs[(v, 'celeba')]
    print(f"| {g} | {'yes' if z else 'no'} | {'the study’s' if K == 'study' else 2} | " +
          ' | '.join(f'{rec[b]:.2f} ({pre[b]:.2f})' for b in benches) + f" | {sum(s) / len(s):.0f} | {'yes' if ok else 'no'} |")
