"""Exact and MinHash near-duplicate removal, the key index, n-gram hashing, decontamination."""

from __future__ import annotations

import random

import numpy as np

from data_recipes.transforms.decontaminate import EvalNgramIndex
from data_recipes.transforms.dedup import EXACT, KEEP, NEAR, Deduplicator, dedup_keys, minhash_signatures
from data_recipes.transforms.keyindex import MISSING, SignatureStore, SortedKeyIndex
from data_recipes.transforms.shingles import encode_batch, exact_keys, normalise_text, window_hashes

A = "医生您好，我最近三天一直头痛，尤其是下午的时候比较严重，还有点恶心，之前没有这种情况，请问这是怎么回事？"
B = A.replace("下午", "晚上")                       # one word changed: near duplicate
E = "Hello doctor, I have had a headache for three days, mostly in the afternoon, and some nausea."


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa = {a[i:i + n] for i in range(len(a) - n + 1)}
    sb = {b[i:i + n] for i in range(len(b) - n + 1)}
    return len(sa & sb) / len(sa | sb)


def test_normalisation_and_window_hashes_by_hand():
    assert normalise_text(" Ab\u3000C d\n") == "abcd"
    batch = encode_batch(["abcdefg", "ab", "", "abcd"])
    wh = window_hashes(batch, 3)
    per_doc = [wh.hashes[wh.doc == d].tolist() for d in range(4)]
    assert [len(h) for h in per_doc] == [5, 1, 1, 2]          # 7-3+1 windows; short texts: one
    assert per_doc[3] == per_doc[0][:2]                       # "abc","bcd" hash the same in both texts
    assert len(set(per_doc[0])) == 5


def test_exact_keys_ignore_case_and_whitespace():
    keys = exact_keys(encode_batch(["Hello World", "hello  world\n", "hello world!"]))
    assert keys[0] == keys[1] != keys[2]


def test_minhash_estimates_jaccard():
    sig = minhash_signatures(encode_batch([A, B, E, A]), 256, 5)
    est = (sig[0] == sig[1]).mean()
    true = jaccard(normalise_text(A), normalise_text(B))
    assert abs(est - true) < 0.12, (est, true)
    assert (sig[0] == sig[3]).all() and (sig[0] == sig[2]).mean() < 0.05


def test_sorted_key_index_lookup_insert_and_merges():
    rng = np.random.default_rng(0)
    index = SortedKeyIndex()
    reference: dict[int, int] = {}
    for step in range(40):
        keys = rng.integers(0, 5000, 300).astype(np.uint64)
        found = index.lookup(keys)
        for k, v in zip(keys.tolist(), found.tolist()):
            assert v == reference.get(k, int(MISSING))
        new = found == MISSING
        vals = np.arange(step * 300, step * 300 + 300, dtype=np.uint32)
        index.insert_new(keys[new], vals[new])
        for k, v in zip(keys[new].tolist(), vals[new].tolist()):
            reference.setdefault(k, v)                       # first insert wins, also within a batch
    assert len(index) == len(reference)
    assert len(index._keys) <= 12                             # runs were merged (log-structured)
    assert index.nbytes == 12 * len(reference)


def test_signature_store_crosses_chunks():
    store = SignatureStore(4)
    store.CHUNK = 8
    rows = np.arange(80, dtype=np.uint32).reshape(20, 4)
    assert store.append(rows[:5]).tolist() == list(range(5))
    store.append(rows[5:])
    assert (store.get(np.array([19, 0, 9, 8])) == rows[[19, 0, 9, 8]]).all()


def test_dedup_exact_near_and_scopes():
    texts = [A, E, B, A.upper(), "完全不同的一段话，关于皮肤瘙痒和红疹的问题。"]
    decisions = Deduplicator(threshold=0.7).check(dedup_keys(texts, True), np.zeros(5, dtype=np.int64))
    assert decisions.tolist() == [KEEP, KEEP, NEAR, EXACT, KEEP]
    # within_source: the same text in two sources is kept in both
    within = Deduplicator(threshold=0.7).check(dedup_keys([A, A], True), np.array([0, 1]))
    assert within.tolist() == [KEEP, KEEP]


def test_dedup_threshold_keeps_template_like_but_different_texts():
    rng = random.Random(0)
    symptoms = ["头痛", "发热", "咳嗽", "腹痛", "恶心", "皮疹", "胸闷", "乏力", "失眠", "关节痛"]
    texts = ["".join(rng.choice(symptoms) + "，" for _ in range(40)) for _ in range(200)]
    decisions = Deduplicator(threshold=0.8).check(dedup_keys(texts, True), np.zeros(200, dtype=np.int64))
    assert (decisions == KEEP).all()


def test_dedup_decisions_do_not_depend_on_batching():
    rng = random.Random(1)
    base = [A, B, E, E.replace("three", "four"), A + "！", "短", "短"]
    texts = [rng.choice(base) + str(rng.randint(0, 3)) for _ in range(300)]
    whole = Deduplicator().check(dedup_keys(texts, True), np.zeros(300, dtype=np.int64))
    for size in (1, 7, 64):
        dedup = Deduplicator()
        parts = [dedup.check(dedup_keys(texts[i:i + size], True), np.zeros(len(texts[i:i + size]), dtype=np.int64))
                 for i in range(0, 300, size)]
        assert (np.concatenate(parts) == whole).all()
    assert (whole == KEEP).sum() >= 4 and (whole == NEAR).sum() > 0 and (whole == EXACT).sum() > 0


def test_decontamination_finds_shared_ngrams_only():
    index = EvalNgramIndex(20)
    index.add(["患者男，45岁，反复胸闷气短两年，活动后加重，夜间不能平卧。", "短问题"])
    index.freeze()
    train = ["病史：反复胸闷气短两年，活动后加重，夜间不能平卧。请问怎么办", "头痛三天，伴恶心呕吐，没有发热。",
             "短问题", "短问题吗"]
    assert index.contaminated(train).tolist() == [True, False, True, False]
