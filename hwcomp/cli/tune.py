"""`hwcomp tune MODEL.onnx --target cuda|llvm --trials N [--db DIR] [--rpc HOST:PORT --key KEY] [--ops ...]`:
MetaSchedule tuning of the model's fused kernels into a resumable database (see backends/tvm_cuda/tuning.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..passes import PassContext, run_pipeline
from .app import app, console
from .common import SHAPE_HELP, load_model


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


@app.command()
def tune(model: str = typer.Argument(..., help="model.onnx or graph.hwir"),
         target: str = typer.Option(..., "--target", "-t", help="cuda | llvm"),
         trials: int = typer.Option(..., "--trials", "-n", help="measured trials per kernel, counted in the "
                                    "database (a rerun adds only the missing ones)"),
         arch: str = typer.Option("sm_90", "--arch", help="CUDA arch (cuda target)"),
         db: Optional[str] = typer.Option(None, "--db", help="database dir (default schedules/db/<arch>/, "
                                          "llvm for CPU)"),
         rpc: Optional[str] = typer.Option(None, "--rpc", help="RPC tracker HOST:PORT for remote measurement"),
         key: Optional[str] = typer.Option(None, "--key", help="RPC key the servers registered with"),
         ops: Optional[str] = typer.Option(None, "--ops", help="op classes to tune, e.g. dense,attention "
                                           "(dense, attention, layer_norm, gelu, other; default all)"),
         shape: Optional[list[str]] = typer.Option(None, "--shape", help=SHAPE_HELP),
         precision: str = typer.Option("fp16", "--precision", help="GPU float precision: fp16 | fp32 "
                                       "(llvm always fp32)"),
         per_iter: int = typer.Option(16, "--per-iter", help="candidates measured per batch"),
         seed: Optional[int] = typer.Option(None, "--seed", help="search random seed"),
         population: int = typer.Option(512, "--population", help="evolutionary search population (smaller: "
                                        "faster search per batch, for quick sessions and tests)"),
         ) -> None:
    """Autotune the model's kernels with MetaSchedule (evolutionary search, XGBoost cost model)."""
    from ..backends.tvm_cuda import tuning
    from ..backends.tvm_cuda.relax_lowering import lower_to_relax

    tgt = tuning.make_target(target, arch)
    op_set = tuning.parse_ops(ops)
    if precision not in ("fp16", "fp32"):
        raise tuning.TuningError(f"--precision {precision!r}: choose fp16 or fp32")
    if trials < 1:
        raise tuning.TuningError(f"--trials {trials}: need at least 1 trial per kernel")
    db_dir = Path(db) if db else tuning.default_db_dir(target, arch)
    if (db_dir / tuning.MANIFEST).exists() or (db_dir / tuning.WORKLOAD_FILE).exists():
        tuning.check_manifest(db_dir, tgt)  # a foreign database fails before any work
    runner = None
    if rpc or key:
        from ..backends.tvm_cuda import rpc as rpc_mod
        r = rpc_mod.parse_rpc(rpc or "", key)
        n_servers = rpc_mod.check_tracker(r)
        import tvm.s_tir.meta_schedule as ms
        evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
        runner = rpc_mod.make_rpc_runner(r, n_servers, evaluator)
        console.print(f"measuring through RPC tracker {r.addr}, key {r.key!r}: {n_servers} server(s)")

    g = load_model(model, shape)
    g = run_pipeline(g, "cuda", PassContext())
    # Lower exactly as `hwcomp compile` does, so that the tuned workloads are the ones compile applies.
    lm = lower_to_relax(g, precision if target == "cuda" else "fp32", target=target, arch=arch)
    mod = tuning.lowered_module(lm, tgt)
    tasks = tuning.extract_tasks(mod, tgt, op_set)
    if not tasks:
        raise tuning.TuningError(f"{model}: no kernels of class {ops or 'any'} to tune; classes present: "
                                 f"{', '.join(sorted(set(tuning.kernel_classes(mod).values())))}")
    if (db_dir / tuning.MANIFEST).exists():
        tuning.record_counts(tuning.open_database(db_dir, tgt), tasks)

    t = Table(title=f"{len(tasks)} kernels to tune ({sum(x.weight for x in tasks)} call sites) -> {db_dir}")
    for c in ("kernel", "class", "weight", "GFLOP/call", "in DB", "to measure"):
        t.add_column(c)
    for x in tasks:
        t.add_row(x.name, x.op_class, str(x.weight), f"{x.flops / 1e9:.4f}", str(x.existing),
                  str(max(0, trials - x.existing)))
    console.print(t)
    if all(x.existing >= trials for x in tasks):
        console.print(f"every kernel already has >= {trials} trials in {db_dir}; raise --trials to tune further")
        return

    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("best {task.fields[best]} GFLOP/s"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        ids = {x.name: bar.add_task(x.name, total=max(trials, x.existing), completed=x.existing,
                                    best=_fmt(x.gflops(x.best_us * 1e-6) if x.best_us else None, ".1f"))
               for x in tasks}

        def on_progress(p: tuning.Progress) -> None:
            bar.update(ids[p.task.name], completed=min(p.trials, p.target_trials),
                       best=_fmt(p.task.gflops(p.best_us * 1e-6) if p.best_us else None, ".1f"))

        try:
            session = tuning.tune(tasks, tgt, db_dir, tuning.TuneOptions(
                trials=trials, per_iter=per_iter, seed=seed, population=population, runner=runner), on_progress,
                baselines=lm.kernel_schedules)
        except KeyboardInterrupt:
            bar.stop()
            console.print(f"interrupted: {sum(x.existing for x in tasks)} records are saved in {db_dir}; rerun the "
                          "same command to continue")
            raise typer.Exit(130) from None

    t = Table(title=f"tuned in {session['seconds']:.0f} s -> {db_dir}")
    for c in ("kernel", "class", "weight", "records", "best us", "best GFLOP/s"):
        t.add_column(c)
    for row in tuning.summarize(tasks):
        t.add_row(row["task"], row["op_class"], str(row["weight"]), str(row["records"]), _fmt(row["best_us"], ".2f"),
                  _fmt(row["best_gflops"], ".1f"))
    console.print(t)
