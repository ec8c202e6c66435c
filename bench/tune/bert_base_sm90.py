"""Short MetaSchedule session on BERT-base's heaviest kernels for sm_90, then end-to-end latency of
`compile --tuning-db` against the untuned build. Run on the GPU machine (see bench/gpu/device_env.sh):

    python bench/tune/bert_base_sm90.py --db schedules/db/sm_90 --trials 32 --ops dense --out $OUT/bert_base_sm90.json

Latency: median of 50 device-synchronised runs (TVM time_evaluator) after warm-up, batch 1 (``--batch``),
seq 128, fp16. hwcomp's own schedule of every tuned kernel is measured in the session as its baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def latency_ms(ex, lm, feeds, runs: int = 50) -> tuple[float, np.ndarray]:
    import tvm
    from tvm import relax

    dev = tvm.cuda(0)
    vm = relax.VirtualMachine(ex, dev)
    args = [tvm.runtime.tensor(feeds[i], dev) for i in lm.input_names] + \
           [tvm.runtime.tensor(lm.params[k], dev) for k in lm.param_names]
    out = vm["main"](*args)
    first = (out if not hasattr(out, "__len__") or hasattr(out, "numpy") else out[0]).numpy()
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    dev.sync()
    res = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=runs, min_repeat_ms=0)("main")
    return float(np.median(np.asarray(res.results))) * 1e3, first


def plain_build(lm, target, db):
    import tvm
    from tvm import relax
    from tvm.s_tir import dlight as dl

    from hwcomp.backends.tvm_cuda import tuning

    with target:
        mod = relax.get_pipeline("zero")(lm.mod)
        if db:
            mod = tuning.apply_database(mod, target, db)
        mod = dl.ApplyDefaultSchedule(dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                      dl.gpu.Fallback())(mod)
        return tvm.compile(mod, target)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="schedules/db/sm_90")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--ops", default="dense,attention")
    ap.add_argument("--top", type=int, default=4, help="tune the N heaviest kernels (flops x weight)")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--phase", choices=["tune", "bench", "both"], default="both",
                    help="tune only, benchmark the database as it is, or both")
    ap.add_argument("--build", choices=["plain", "hwcomp"], default="hwcomp",
                    help="hwcomp: compile.build (tuning records, else hwcomp's schedules, else dlight); plain: "
                         "Relax + tuning records + dlight only")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import hwcomp
    from hwcomp import zoo
    from hwcomp.backends.tvm_cuda import tuning
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.passes import run_pipeline

    feeds = zoo.sample_inputs("bert-base", batch=a.batch, seq=128)
    g = run_pipeline(hwcomp.load_onnx(zoo.get("bert-base", exporter="legacy"), {k: v.shape for k, v in feeds.items()}),
                     "cuda")
    target = tuning.make_target("cuda", "sm_90")
    # Lowered as `hwcomp compile --target cuda` does: the tasks are hwcomp's kernel definitions.
    lm = lower_to_relax(g, a.precision, target="cuda", arch="sm_90")
    mod = tuning.lowered_module(lm, target)
    tasks = tuning.extract_tasks(mod, target, tuning.parse_ops(a.ops))[: a.top]
    t0 = time.time()
    if a.phase == "tune":
        session = tuning.tune(tasks, target, Path(a.db), tuning.TuneOptions(trials=a.trials, per_iter=16, seed=0),
                              baselines=lm.kernel_schedules,
                              on_progress=lambda p: print(f"{p.task.name}: {p.trials}/{p.target_trials} best "
                                              f"{p.best_us or float('nan'):.1f} us", flush=True))
        print(json.dumps(session))
        return
    session = None
    if a.phase == "both":
        session = tuning.tune(tasks, target, Path(a.db), tuning.TuneOptions(trials=a.trials, per_iter=16, seed=0),
                              baselines=lm.kernel_schedules)
    tuning.record_counts(tuning.open_database(Path(a.db), target), tasks)
    tune_s = time.time() - t0

    result = {"model": "bert-base", "batch": a.batch, "seq": 128, "precision": a.precision, "arch": "sm_90",
              "trials_per_kernel": a.trials, "ops": a.ops, "tune_seconds": round(tune_s, 1),
              "tasks": tuning.summarize(tasks), "session": session}
    if a.build == "plain":  # Relax "zero" + [tuning records] + dlight defaults, without hwcomp.schedules
        result["build"] = "relax zero pipeline + dlight defaults (GEMV, Reduction, GeneralReduction, Fallback)"
        ex0, lm0 = plain_build(lm, target, None), lm
        ex1, lm1 = plain_build(lm, target, a.db), lm
    else:
        result["build"] = "hwcomp.backends.tvm_cuda.compile.build"
        ex0, lm0 = build(g, "cuda", "sm_90", a.precision, None)
        ex1, lm1 = build(g, "cuda", "sm_90", a.precision, a.db)
    result["untuned_ms"], y0 = latency_ms(ex0, lm0, feeds)
    result["tuned_ms"], y1 = latency_ms(ex1, lm1, feeds)
    result["speedup"] = round(result["untuned_ms"] / result["tuned_ms"], 3)
    result["max_abs_diff_tuned_vs_untuned"] = float(np.abs(y0.astype(np.float64) - y1).max())
    result["tuned_kernels"] = lm1.tuned_kernels if a.build == "hwcomp" else \
        tuning.database_kernels(tuning.apply_database(mod, target, a.db))
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("untuned_ms", "tuned_ms", "speedup", "tuned_kernels")}))


if __name__ == "__main__":
    main()
