"Fast tests of invdiff_nb.text: corpus determinism, parser round trip, CSV I/O, vocabulary and bad input."
import random, subprocess, sys
from pathlib import Path

import pytest

from invdiff_nb.text import (E2E_VALUES, FIELDS, ParseError, Vocab, block_length, format_mr, make_corpus,
                             parse_mr_string, parse_sentence, read_e2e_csv, realize, sentence_patterns, tokenize,
                             try_parse, validate_mr, write_e2e_csv, write_e2e_like)

ROOT = Path(__file__).resolve().parents[1]


def test_corpus_deterministic_and_shaped():
    a, b = make_corpus(200, seed=5), make_corpus(200, seed=5)
    assert a == b and a != make_corpus(200, seed=6)
    for mr, s in a:
        assert 3 <= len(mr) <= 8 and 'name' in mr and list(mr) == [f for f in FIELDS if f in mr]
        assert 1 <= s.count('.') <= 2 and s.endswith('.')
    assert len(sentence_patterns()) >= 20


def test_round_trip_thousands():
    data = make_corpus(3000, seed=11)
    bad = [(mr, s) for mr, s in data if try_parse(s) != mr]
    assert not bad, bad[:3]


def test_every_value_is_realised_and_parsed():
    rng = random.Random(0)
    for f in FIELDS[1:]:
        for v in E2E_VALUES[f]:
            mr = {'name': 'Cotto', 'eatType': 'pub', f: v} if f != 'eatType' else {'name': 'Cotto', f: v, 'area': 'riverside'}
            for _ in range(5): assert parse_sentence(realize(mr, rng)) == validate_mr(mr)


def test_parser_rejects_non_grammar():
    for junk in ['', 'pub pub pub .', 'Cotto is a pub', 'Cotto is a pub. It serves Italian food. It is cheap.',
                 'Cotto is a pub serving Italian food serving Chinese food.', 'Cotto is a pub serving Thai food.']:
        with pytest.raises(ParseError): parse_sentence(junk)
    assert try_parse('Cotto is a pub serving Italian food.') == {'name': 'Cotto', 'eatType': 'pub', 'food': 'Italian'}


def test_mr_strings_and_bad_mrs():
    s = 'name[Alimentum], area[city centre], familyFriendly[no]'
    assert format_mr(parse_mr_string(s)) == s
    with pytest.raises(KeyError, match='unknown E2E field'): validate_mr({'name': 'Cotto', 'colour': 'red'})
    with pytest.raises(ValueError, match='unknown value'): validate_mr({'name': 'Cotto', 'food': 'Thai'})
    with pytest.raises(ValueError, match='malformed'): parse_mr_string('name=Cotto')


def test_csv_round_trip_and_fixture(tmp_path):
    data = make_corpus(20, seed=1)
    assert read_e2e_csv(write_e2e_csv(tmp_path / 'a.csv', data)) == data
    fx = tmp_path / 'devset.csv'
    fx.write_text('mr,ref\n"name[Alimentum], area[city centre], familyFriendly[no]","Alimentum is not family-friendly."\n'
                  '"name[The Punter], food[English], priceRange[£20-25]","The Punter serves English food, £20-25."\n',
                  encoding='utf-8')
    rows = read_e2e_csv(fx)
    assert rows[1] == ({'name': 'The Punter', 'food': 'English', 'priceRange': '£20-25'}, 'The Punter serves English food, £20-25.')


@pytest.mark.parametrize('text,match', [('meaning,text\n"name[Cotto]",hi\n', 'header'), ('', 'header'),
                                        ('mr,ref\n"name[Cotto]",hi,extra\n', 'line 2'),
                                        ('mr,ref\n"name[Cotto]",ok\nname=Cotto,hi\n', 'line 3'),
                                        ('mr,ref\n"name[Cotto], food[Thai]",hi\n', 'line 2')])
def test_csv_wrong_format(tmp_path, text, match):
    p = tmp_path / 'bad.csv'; p.write_text(text, encoding='utf-8')
    with pytest.raises(ValueError, match=match): read_e2e_csv(p)
    with pytest.raises(FileNotFoundError): read_e2e_csv(tmp_path / 'missing.csv')


def test_vocab_encode_decode_and_errors():
    texts = [s for _, s in make_corpus(300, seed=2)]
    v = Vocab.build(texts)
    L = block_length(max(len(tokenize(t)) for t in texts))
    assert L % 8 == 0
    for t in texts[:50]:
        ids = v.encode(t, L)
        assert len(ids) == L and ids[0] == v.start_id and ids.count(v.end_id) == 1 and v.decode(ids) == tokenize(t)
        assert set(ids[ids.index(v.end_id) + 1:]) <= {v.pad_id}
    assert v.encode('cotto zorblax', 6)[2] == v.unk_id
    with pytest.raises(KeyError, match='zorblax'): v.encode('cotto zorblax', 6, strict=True)
    with pytest.raises(ValueError, match='does not fit'): v.encode(texts[0], 5)
    with pytest.raises(ValueError, match='outside the vocabulary'): v.decode([1, 5, len(v)])
    with pytest.raises(ValueError, match='outside the vocabulary'): v.decode([-1])
    with pytest.raises(ValueError, match='starts with'): Vocab(['a', 'b'])


def test_cli_writes_outside_repo(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / 'data_scripts' / 'make_e2e_like.py'), str(tmp_path / 'e2e'),
                        '--n-train', '12', '--n-valid', '3', '--n-test', '3', '--seed', '4'],
                       capture_output=True, text=True, cwd=tmp_path, env={'PYTHONPATH': str(ROOT), 'PATH': ''})
    assert r.returncode == 0, r.stderr
    rows = read_e2e_csv(tmp_path / 'e2e' / 'train.csv')
    assert len(rows) == 12 and rows == make_corpus(12, seed=4000)
    assert len(read_e2e_csv(tmp_path / 'e2e' / 'test.csv')) == 3
    assert write_e2e_like(tmp_path / 'x', 2, 1, 1, seed=4)['train'].exists()
