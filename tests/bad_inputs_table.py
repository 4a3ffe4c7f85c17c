"""Print the bad-input table of tests/README.md: one row per `pytest.raises` block of the test files (the call, the
error and the message pattern it must match, the test). Run from the project folder:
`python tests/bad_inputs_table.py` and paste the output under "Bad inputs" in tests/README.md."""
import ast, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
rows = []
for f in sorted((ROOT / 'tests').glob('test_*.py')):
    tree = ast.parse(f.read_text())
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith('test_')]:
        for w in [n for n in ast.walk(fn) if isinstance(n, ast.With)]:
            for it in w.items:
                c = it.context_expr
                if not (isinstance(c, ast.Call) and ast.unparse(c.func) == 'pytest.raises'): continue
                exc = ast.unparse(c.args[0]) if c.args else '?'
                match = next((k.value for k in c.keywords if k.arg == 'match'), None)
                msg = ast.literal_eval(match) if isinstance(match, ast.Constant) else (ast.unparse(match) if match is not None else '')
                call = ' '.join(ast.unparse(b) for b in w.body).replace('\n', ' ')
                rows.append((f.stem, fn.name, call, exc, msg))
def cell(s, n=95):
    s = s.replace('|', '\\|').replace('`', "'")
    return s if len(s) <= n else s[:n - 1] + '…'
out = ['| # | bad input | error: message (pattern matched) | test |', '|---|---|---|---|']
for i, (mod, fn, call, exc, msg) in enumerate(rows, 1):
    out.append(f'| {i} | `{cell(call)}` | {exc}: `{cell(str(msg), 70)}` | `{mod}.py::{fn}` |')
if __name__ == '__main__': print('\n'.join(out))
