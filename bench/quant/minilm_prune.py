"""Accuracy cost of pruning on real MiniLM-L6: sentence-embedding cosine and nearest-neighbour agreement
against the float model on the held-out sentences, for 2:4 structured and unstructured magnitude pruning
of every dense weight (no fine-tuning). Writes bench/quant/minilm_prune.json.

    python bench/quant/minilm_prune.py [--seq 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import hwcomp
from hwcomp import zoo
from hwcomp.passes import PassContext, run_pipeline
from hwcomp.quant.evaluate import embedding_report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).with_name("minilm_prune.json")))
    a = ap.parse_args()
    sents = zoo.eval_sentences()
    n = len(sents) // a.batch * a.batch
    feeds = zoo.tokenize(sents[:n], a.seq)
    batches = [{k: v[i:i + a.batch] for k, v in feeds.items()} for i in range(0, n, a.batch)]
    path = zoo.default_model()
    g = run_pipeline(hwcomp.load_onnx(path, {k: v.shape for k, v in batches[0].items()}), "default")

    def embed(graph):
        return np.concatenate([hwcomp.run(graph, b)["sentence_embedding"] for b in batches])

    ref = embed(g)
    rows = []
    for name, passes, opts in (("2:4", ["prune_n_m"], {"n": 2, "m": 4}),
                               ("magnitude 50%", ["prune_magnitude"], {"sparsity": 0.5}),
                               ("magnitude 25%", ["prune_magnitude"], {"sparsity": 0.25})):
        t = time.perf_counter()
        pg = run_pipeline(g, passes, PassContext(options=opts))
        dense_w = [pg.constants[nd.inputs[1]] for nd in pg.nodes if nd.op == "dense"]
        sparsity = float(np.mean([np.mean(w == 0) for w in dense_w]))
        rows.append({"method": name, "weight_sparsity": sparsity, **embedding_report(ref, embed(pg)),
                     "seconds": time.perf_counter() - t})
        print(rows[-1], flush=True)
    Path(a.out).write_text(json.dumps({"model": "all-MiniLM-L6-v2", "seq": a.seq, "sentences": n,
                                       "note": "every dense weight pruned, no fine-tuning", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
