"""Prints the sweep's logs as one markdown table: bias score per run, and each variant minus lam = 0 of its family."""
import json, pathlib
here = pathlib.Path(__file__).parent
FAMILIES = {'constant_lr.log': 'constant lr, independent noise', 'celeba_constant_lr.log': 'constant lr, independent noise',
            'cosine.log': 'cosine lr, independent noise', 'cosine_shared_noise.log': 'cosine lr, shared noise'}
rows = []
for f, fam in FAMILIES.items():
    for line in (here / f).read_text().splitlines():
        if not line.startswith('{'): continue
        r = json.loads(line)
        name = r.get('var') or f"l{r['lam']:g}"
        name = name.replace('crn_', '').replace('cos_', '')
        rows.append(dict(family=fam, bench=r['bench'], seed=r['seed'], K=r['K'], name=name, bias=r['bias'], fd=r['fd']))
zero = {(r['family'], r['bench'], r['seed'], r['K']): r['bias'] for r in rows if r['name'] == 'l0'}
print('| family | benchmark | seed | K/class | variant | bias score | FD | minus lam = 0 |')
print('|---|---|---|---|---|---|---|---|')
for r in rows:
    z = zero.get((r['family'], r['bench'], r['seed'], r['K']))
    d = '' if z is None or r['name'] == 'l0' else f"{r['bias'] - z:+.3f}"
    print(f"| {r['family']} | {r['bench']} | {r['seed']} | {r['K']} | {r['name']} | {r['bias']:.3f} | {r['fd']:.2f} | {d} |")
