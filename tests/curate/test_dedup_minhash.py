"""MinHash signatures: bit-identical to datasketch, shingling, estimation."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from thresher.curate.dedup.minhash import jaccard, permutations, signatures, text_signatures
from thresher.curate.dedup.shingles import shingle_hashes, shingle_texts

from ._dedup_data import paragraphs


def _random_docs(rng: np.random.Generator, n: int) -> list[str]:
    vocab = [f"w{i}" for i in range(300)] + ["héllo", "naïve", "東京", "x"]
    return [" ".join(rng.choice(vocab, size=int(rng.integers(0, 60)))) for _ in range(n)]


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 42), (2, 7), (256, 12345)])
def test_permutations_are_datasketch_permutations(num_perm, seed):
    a, b = permutations(num_perm, seed)
    ref = MinHash(num_perm=num_perm, seed=seed)
    assert ref.scheme == "affine32"
    np.testing.assert_array_equal(a, ref.permutations[0])
    np.testing.assert_array_equal(b, ref.permutations[1])


@pytest.mark.parametrize("num_perm,seed,unit", [(128, 1, "word"), (64, 3, "char"), (200, 99, "word")])
def test_signatures_equal_datasketch_update_batch_on_random_documents(num_perm, seed, unit):
    rng = np.random.default_rng(seed)
    docs = _random_docs(rng, 80)
    hashes, offsets = shingle_hashes(docs, ngram=3, unit=unit)
    sig = signatures(hashes, offsets, num_perm=num_perm, seed=seed)
    assert sig.shape == (80, num_perm) and sig.dtype == np.uint32
    for i in range(len(docs)):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
        m.update_batch([int(h) for h in hashes[offsets[i]:offsets[i + 1]]])
        np.testing.assert_array_equal(sig[i], m.hashvalues, err_msg=f"doc {i}")


def test_random_hash_values_of_any_32_bit_value_match():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**32, size=5000, dtype=np.uint64).astype(np.uint32)
    h[:3] = [0, 1, 2**32 - 1]
    offsets = np.array([0, 1, 3, 1000, 5000])
    sig = signatures(h, offsets, num_perm=128, seed=5)
    for i in range(4):
        m = MinHash(num_perm=128, seed=5, hashfunc=int)
        m.update_batch(h[offsets[i]:offsets[i + 1]].tolist())
        np.testing.assert_array_equal(sig[i], m.hashvalues)


@pytest.mark.parametrize("unit,ngram", [("word", 5), ("char", 4)])
def test_sha1_mode_reproduces_datasketch_default_signatures(unit, ngram):
    docs = list(paragraphs()[:10]) + ["short one", ""]
    sig = text_signatures(docs, num_perm=128, seed=1, ngram=ngram, unit=unit, hash="sha1")
    for i, d in enumerate(docs):
        m = MinHash(num_perm=128)  # datasketch defaults: sha1_hash32, seed 1
        m.update_batch([s.encode("utf-8") for s in shingle_texts(d, ngram, unit)])
        np.testing.assert_array_equal(sig[i], m.hashvalues)


def test_signatures_go_into_datasketch_lsh_and_leanminhash():
    docs = list(paragraphs()[:20])
    docs.append(docs[3] + " extra")
    sig = text_signatures(docs, num_perm=128, seed=1)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    mins = [MinHash(num_perm=128, seed=1, hashvalues=s, scheme="affine32") for s in sig]
    for i, m in enumerate(mins):
        lsh.insert(i, LeanMinHash(m))
    assert sorted(lsh.query(mins[20])) == [3, 20]
    assert mins[3].jaccard(mins[20]) == pytest.approx(jaccard(sig[3], sig[20]))


def test_fast_shingles_follow_the_reference_definition():
    docs = ["a b c d e f g", "one two", "", "  spaced\u00a0out\ttext\nhere  ", "x"]
    for unit, n in (("word", 5), ("word", 2), ("char", 3)):
        h, off = shingle_hashes(docs, ngram=n, unit=unit)
        for i, d in enumerate(docs):
            ref = shingle_texts(d, n, unit)
            got = h[off[i]:off[i + 1]]
            assert len(got) == len(ref), (unit, n, d)
            # equal shingles hash equally, different ones (here) differently
            assert len(set(got.tolist())) == len(set(ref))
    # the same shingle hashes the same wherever it appears
    h, off = shingle_hashes(["p q r s t", "z p q r s t"], ngram=5)
    assert h[0] == h[off[1] + 1]


def test_empty_document_has_the_empty_signature():
    sig = text_signatures(["", "words here"], num_perm=16)
    assert (sig[0] == np.uint32(0xFFFFFFFF)).all()
    assert not (sig[1] == np.uint32(0xFFFFFFFF)).all()
    assert MinHash(num_perm=16, hashvalues=sig[0], scheme="affine32").is_empty()


def test_estimated_jaccard_tracks_true_jaccard():
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(40):
        universe = rng.permutation(4000)
        k = int(rng.integers(50, 400))
        shared = int(rng.integers(0, k))
        a = universe[:k]
        b = np.concatenate([universe[:shared], universe[k:2 * k - shared]])
        true = shared / (2 * k - shared)
        sig = signatures(np.concatenate([a, b]).astype(np.uint32), np.array([0, k, 2 * k]), num_perm=256)
        errors.append(jaccard(sig[0], sig[1]) - true)
    assert abs(np.mean(errors)) < 0.02
    assert np.max(np.abs(errors)) < 0.12
