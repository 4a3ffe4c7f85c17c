"""Prints a log of draws.py (draws.log) as a markdown table: the bias score of each variant per (benchmark, development seed), the
minority's share of its draws in brackets, the mean bias per benchmark and over all runs.
usage: python draws_table.py [LOG]   (default draws.log)"""
import json, pathlib, sys
log = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent / 'draws.log'
rows = [json.loads(l) for l in log.read_text().splitlines() if l.startswith('{')]
cols = list(dict.fromkeys((r['bench'], r['seed']) for r in rows))
fits = list(dict.fromkeys(r['fit'] for r in rows))
by = {(r['fit'], r['bench'], r['seed']): r for r in rows}
benches = list(dict.fromkeys(b for b, _ in cols))
print('| variant | ' + ' | '.join(f'{b} {s}' for b, s in cols) + ' | ' + ' | '.join(f'mean {b}' for b in benches) + ' | mean |')
print('|---' * (len(cols) + len(benches) + 2) + '|')
for f in fits:
    cells = [by.get((f, b, s)) for b, s in cols]
    got = [c['bias'] for c in cells if c]
    per = [[c['bias'] for c, (b2, _) in zip(cells, cols) if c and b2 == b] for b in benches]
    print(f'| {f} | ' + ' | '.join(f"{c['bias']:.3f} ({c['draw_share']:.2f})" if c else '' for c in cells)
          + ' | ' + ' | '.join(f'{sum(v) / len(v):.3f}' if v else '' for v in per) + f' | {sum(got) / len(got):.3f} |')
