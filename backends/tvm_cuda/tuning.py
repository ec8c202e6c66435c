"""MetaSchedule autotuning of hwcomp's fused kernels (`hwcomp tune`) and `compile --tuning-db` (apply_database).

Tasks are the PrimFuncs of the module that `compile` builds: hwcomp graph -> Relax (``lower_to_relax``)
-> ``relax.get_pipeline("zero")`` (LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR).
MetaSchedule's ``extract_tasks`` deduplicates structurally equal kernels across layers; a task's weight is
how many call sites share it. Each task gets an hwcomp op class from its call sites (`dense`: a matmul
with a weight parameter; `attention`: matmuls of two activations and the softmax between them;
`layer_norm`, `gelu`, `other`), which ``--ops`` filters on.

Database directory (default ``schedules/db/<arch>/``, ``llvm`` for CPU):
    database_workload.json        MetaSchedule JSONDatabase: one line per workload [shash, IRModule json]
    database_tuning_record.json   one line per measured candidate [workload index, [trace, run_secs, ...]]
    manifest.json                 hwcomp's header: format, TVM version, target kind, arch, target, and
                                  per-task record counts, best times and hwcomp's own schedule's time
    database_*.json.xz            the two JSON files compressed (what git keeps: traces of tensorized
                                  schedules are ~20 KB each); written after every session, unpacked on open
                                  when newer than the JSON files or when those are absent

``--trials N`` is a per-task budget counted in the database: a second run only measures the missing
``N - existing`` trials of each task, and the evolutionary search starts from the database's best records.
A candidate already in the database (the same scheduled module) is never measured again: see skip_measured.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import lzma
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from hwcomp.errors import BackendError

from .scheduled_ops import SCHEDULE_SOURCE_ATTR

log = logging.getLogger(__name__)

DB_FORMAT = "hwcomp-tuning-db/1"
MANIFEST = "manifest.json"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
OP_CLASSES = ("dense", "attention", "layer_norm", "gelu", "other")


class TuningDatabaseError(BackendError):
    """A tuning database that belongs to another target, arch or TVM version, or is not one at all."""


class TuningError(BackendError):
    """Bad tuning options, or nothing to tune."""


@dataclass
class TuneTask:
    name: str             # the fused PrimFunc's name in the lowered module
    op_class: str         # one of OP_CLASSES
    weight: int           # call sites sharing this workload
    flops: float          # per call
    extracted: object     # ms.ExtractedTask
    existing: int = 0     # records already in the database
    best_us: float | None = None  # best measured time in the database
    hwcomp_us: float | None = None  # hwcomp's own schedule of this kernel, measured the same way

    @property
    def mod(self):
        return self.extracted.dispatched[0]

    def gflops(self, seconds: float) -> float:
        return self.flops / seconds / 1e9 if seconds > 0 else 0.0


# ---------------------------------------------------------------- TVM start-up

from .startup import import_tensor_intrinsics  # noqa: E402,F401  (re-exported for callers)


# ---------------------------------------------------------------- targets and database location

def make_target(target_kind: str, arch: str):
    import tvm

    if target_kind == "cuda":
        from .compile import cuda_target
        cuda_target(arch)  # validates the arch
        # MetaSchedule's GPU rules need the launch limits, which an arch-only target lacks. The limits are
        # those of every arch since sm_70 (48 KiB static shared memory); the records apply to compile's
        # arch-only target because the database is keyed by workload.
        return tvm.target.Target({"kind": "cuda", "arch": arch, "max_threads_per_block": 1024,
                                  "max_num_threads": 1024, "thread_warp_size": 32, "registers_per_block": 65536,
                                  "max_shared_memory_per_block": 49152}, host={"kind": "llvm"})
    if target_kind == "llvm":
        # MetaSchedule's CPU rules need the core count; the tuned workloads do not depend on it.
        return tvm.target.Target({"kind": "llvm", "num-cores": _physical_cores()})
    raise TuningError(f"--target {target_kind!r}: hwcomp tune supports cuda and llvm")


def _physical_cores() -> int:
    try:
        import psutil
        return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except ImportError:
        return int(os.cpu_count() or 1)


def db_arch(target_kind: str, arch: str) -> str:
    return arch if target_kind == "cuda" else "llvm"


def default_db_dir(target_kind: str, arch: str) -> Path:
    """``schedules/db/<arch>`` inside the hwcomp.schedules package (the repo's schedules/ when editable)."""
    spec = importlib.util.find_spec("hwcomp.schedules")
    root = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else \
        Path(__file__).resolve().parents[2] / "schedules"
    return root / "db" / db_arch(target_kind, arch)


def _tvm_version() -> str:
    import tvm
    return str(tvm.__version__)


def _target_kind_arch(target) -> tuple[str, str]:
    kind = str(target.kind.name)
    return kind, (str(target.attrs["arch"]) if kind == "cuda" else "llvm")


def resolve_db_dir(db_dir: str | os.PathLike, target) -> Path:
    """A database dir, or a parent holding ``<arch>/manifest.json`` (e.g. ``schedules/db``)."""
    p = Path(db_dir)
    _, arch = _target_kind_arch(target)
    if not (p / MANIFEST).exists() and (p / arch / MANIFEST).exists():
        return p / arch
    return p


def read_manifest(db_dir: Path) -> dict | None:
    path = Path(db_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TuningDatabaseError(f"{path}: unreadable tuning-database manifest ({e}); the database was left "
                                  "unchanged — restore the file or tune into a new --db directory") from None
    if not isinstance(m, dict) or m.get("format") != DB_FORMAT:
        found = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise TuningDatabaseError(f"{path}: not an hwcomp tuning database (format {found!r}, expected "
                                  f"{DB_FORMAT!r}); the database was left unchanged")
    return m


def check_manifest(db_dir: Path, target) -> dict:
    """The manifest if the database matches this target, arch and TVM version; else one clear error."""
    kind, arch = _target_kind_arch(target)
    m = read_manifest(db_dir)
    if m is None:
        has_records = (Path(db_dir) / WORKLOAD_FILE).exists()
        raise TuningDatabaseError(
            f"{db_dir}: no {MANIFEST}" + (" next to MetaSchedule records of unknown target and TVM version"
                                          if has_records else "; not a tuning database") +
            f"; create one with `hwcomp tune MODEL --target {kind} --db {db_dir}`")
    want = {"target_kind": kind, "arch": arch, "tvm_version": _tvm_version()}
    bad = [f"{k} {m.get(k)!r} (this run: {v!r})" for k, v in want.items() if m.get(k) != v]
    if bad:
        raise TuningDatabaseError(
            f"{db_dir}: tuning database is for another setup: {'; '.join(bad)}. Schedules do not carry over "
            "between arches or TVM versions; the database was left unchanged — tune into another --db "
            "directory (default schedules/db/<arch>/) or compile without --tuning-db")
    return m


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _unpack_compressed(d: Path) -> None:
    """JSON files from their ``.xz`` copies where those are newer (a checkout) or the JSON files are absent."""
    for name in (WORKLOAD_FILE, RECORD_FILE):
        xz, plain = d / (name + ".xz"), d / name
        if xz.exists() and (not plain.exists() or xz.stat().st_mtime > plain.stat().st_mtime):
            tmp = plain.with_name(plain.name + ".tmp")
            tmp.write_bytes(lzma.decompress(xz.read_bytes()))
            os.replace(tmp, plain)


def pack_compressed(d: Path) -> None:
    """Write the ``.xz`` copies of the database files (atomically; deterministic bytes for the same records)."""
    for name in (WORKLOAD_FILE, RECORD_FILE):
        plain = Path(d) / name
        if plain.exists():
            tmp = plain.with_name(name + ".xz.tmp")
            tmp.write_bytes(lzma.compress(plain.read_bytes(), preset=9))
            os.replace(tmp, plain.with_name(name + ".xz"))


def _repair_tail(path: Path) -> int:
    """Drop a torn last line (a kill during an append); returns how many lines were dropped."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    keep = len(lines)
    while keep > 0:
        last = lines[keep - 1].strip()
        if not last:
            keep -= 1
            continue
        try:
            json.loads(last)
            break
        except ValueError:
            keep -= 1
    dropped = sum(1 for ln in lines[keep:] if ln.strip())
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(ln + b"\n" for ln in lines[:keep]))
        os.replace(tmp, path)
        log.warning("%s: dropped %d torn line(s) left by an interrupted write", path, dropped)
    return dropped


def open_database(db_dir: str | os.PathLike, target, *, create: bool = False):
    """MetaSchedule JSONDatabase over ``db_dir`` after the manifest check (``create``: start a new one)."""
    from tvm.s_tir import meta_schedule as ms

    d = Path(db_dir)
    if create and read_manifest(d) is None:
        if (d / WORKLOAD_FILE).exists():
            check_manifest(d, target)  # records without a manifest: refuse, do not adopt them
        d.mkdir(parents=True, exist_ok=True)
        kind, arch = _target_kind_arch(target)
        _write_json_atomic(d / MANIFEST, {"format": DB_FORMAT, "tvm_version": _tvm_version(), "target_kind": kind,
                                          "arch": arch, "target": str(target), "tasks": {}})
    check_manifest(d, target)
    _unpack_compressed(d)
    for f in (WORKLOAD_FILE, RECORD_FILE):
        _repair_tail(d / f)
    import_tensor_intrinsics()  # records of tensorized schedules name intrinsics that must be registered
    return ms.database.JSONDatabase(path_workload=str(d / WORKLOAD_FILE), path_tuning_record=str(d / RECORD_FILE),
                                    allow_missing=True, module_equality="structural")


# ---------------------------------------------------------------- task extraction

def lowered_module(lm, target):
    """The module `compile` schedules: Relax after the "zero" pipeline (fused PrimFuncs), for ``target``."""
    from tvm import relax

    with target:
        return relax.get_pipeline("zero")(lm.mod)


def kernel_classes(mod) -> dict[str, str]:
    """PrimFunc name -> hwcomp op class, from the function names and the arguments at their call sites."""
    import tvm
    from tvm import relax

    main = mod["main"]
    n_in = int(main.attrs["num_input"]) if main.attrs and "num_input" in main.attrs else len(main.params)
    weights = set(main.params[n_in:])
    call_tir = tvm.ir.Op.get("relax.call_tir")
    uses_weight: dict[str, bool] = {}
    for blk in main.body.blocks:
        for b in blk.bindings:
            v = b.value
            if isinstance(v, relax.Call) and v.op == call_tir:
                name = v.args[0].name_hint
                args = v.args[1].fields if isinstance(v.args[1], relax.Tuple) else [v.args[1]]
                uses_weight[name] = uses_weight.get(name, False) or any(
                    a in weights or isinstance(a, tvm.ir.expr.Constant) and len(a.data.shape) >= 2 for a in args)
    out = {}
    for name, w in uses_weight.items():
        if name.startswith("attn_"):  # hwcomp's attention kernels (scores, softmax, pv)
            out[name] = "attention"
        elif "matmul" in name or "dense" in name:
            out[name] = "dense" if w else "attention"
        elif "softmax" in name:
            out[name] = "attention"
        elif "layer_norm" in name:
            out[name] = "layer_norm"
        elif "gelu" in name:
            out[name] = "gelu"
        else:
            out[name] = "other"
    return out


def parse_ops(ops: str | None) -> set[str] | None:
    if not ops:
        return None
    want = {o.strip() for o in ops.split(",") if o.strip()}
    bad = sorted(want - set(OP_CLASSES))
    if bad:
        raise TuningError(f"--ops {','.join(bad)}: unknown op class; choose from {', '.join(OP_CLASSES)}")
    return want


def extract_tasks(mod, target, ops: Iterable[str] | None = None) -> list[TuneTask]:
    """Deduplicated tuning tasks of the lowered module, heaviest (flops x weight) first."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    classes = kernel_classes(mod)
    wanted = set(ops) if ops else None
    tasks = []
    for t in ms.relax_integration.extract_tasks(mod, target, module_equality="structural"):
        cls = classes.get(t.task_name, "other")
        if wanted is not None and cls not in wanted:
            continue
        if t.dispatched[0]["main"].attrs and t.dispatched[0]["main"].attrs.get("tirx.is_scheduled", False):
            continue
        try:
            flops = float(estimate_tir_flops(t.dispatched[0]))
        except Exception:  # noqa: BLE001 - flop estimation is informative only
            flops = 0.0
        tasks.append(TuneTask(t.task_name, cls, int(t.weight), flops, t))
    tasks.sort(key=lambda t: (-t.flops * t.weight, t.name))
    return tasks


# ---------------------------------------------------------------- records

def _mean_secs(run_secs) -> float | None:
    vals = [float(x) for x in run_secs or []]
    if not vals or min(vals) >= 1e9:  # MetaSchedule writes 1e10 for failed runs
        return None
    return sum(vals) / len(vals)


def record_counts(db, tasks: list[TuneTask]) -> None:
    """Fill each task's ``existing`` record count and ``best_us`` from the database."""
    import tvm_ffi

    by_hash: dict[int, list] = {}
    for rec in db.get_all_tuning_records():
        by_hash.setdefault(tvm_ffi.structural_hash(rec.workload.mod), []).append(rec)
    for t in tasks:
        recs = [r for r in by_hash.get(tvm_ffi.structural_hash(t.mod), [])
                if tvm_ffi.structural_equal(r.workload.mod, t.mod)]
        t.existing = len(recs)
        secs = [s for s in (_mean_secs(r.run_secs) for r in recs) if s is not None]
        t.best_us = min(secs) * 1e6 if secs else None


def update_manifest(db_dir: Path, tasks: list[TuneTask], session: dict) -> None:
    m = read_manifest(db_dir) or {}
    for t in tasks:
        m.setdefault("tasks", {})[t.name] = {
            "op_class": t.op_class, "weight": t.weight, "flops": t.flops, "records": t.existing,
            "best_us": None if t.best_us is None else round(t.best_us, 3),
            "best_gflops": None if not t.best_us else round(t.gflops(t.best_us * 1e-6), 2),
            "hwcomp_us": None if t.hwcomp_us is None else round(t.hwcomp_us, 3)}
    m.setdefault("sessions", []).append(session)
    m["sessions"] = m["sessions"][-20:]
    _write_json_atomic(Path(db_dir) / MANIFEST, m)


# ---------------------------------------------------------------- tuning

@dataclass
class Progress:
    """What the progress callback receives after each measured batch."""
    task: TuneTask
    trials: int           # records of this task in the database now
    target_trials: int
    batch_ok: int
    batch_total: int
    best_us: float | None


def _progress_callback(group: list[TuneTask], trials: int, on_progress: Callable[[Progress], None] | None,
                       stop: Callable[[], bool] = lambda: False):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    _reported_errors: set[str] = set()

    @derived_object
    class _Report(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            t = group[int(task_id)]
            ok = 0
            for br, rr in zip(builder_results, runner_results):
                err = br.error_msg or rr.error_msg
                if err and t.name not in _reported_errors:
                    _reported_errors.add(t.name)
                    log.warning("%s: a candidate failed to %s: %s", t.name, "build" if br.error_msg else "run",
                                str(err).strip().splitlines()[-1][:300])
                s = _mean_secs(rr.run_secs) if not err else None
                if s is not None:
                    ok += 1
                    t.best_us = s * 1e6 if t.best_us is None else min(t.best_us, s * 1e6)
            t.existing += len(measure_candidates)
            if on_progress is not None:
                on_progress(Progress(t, t.existing, trials, ok, len(measure_candidates), t.best_us))
            if stop():  # Ctrl-C: the batch just measured is in the database; stop here
                raise KeyboardInterrupt

    return _Report()


class MeasuredSet:
    """Scheduled modules of one workload already measured, compared as MetaSchedule compares candidates
    (structural equality of the scheduled IRModule, the database's ``module_equality="structural"``)."""

    def __init__(self) -> None:
        self._by_hash: dict[int, list] = {}

    @classmethod
    def from_database(cls, db, workload_mod) -> "MeasuredSet":
        """Every record of ``workload_mod`` in ``db``, failed builds and runs included (their trace replayed)."""
        import tvm_ffi

        known = cls()
        if db is None or workload_mod is None or not db.has_workload(workload_mod):
            return known
        for rec in db.get_all_tuning_records():
            if not tvm_ffi.structural_equal(rec.workload.mod, workload_mod):
                continue
            try:
                known.add(rec.as_measure_candidate().sch.mod)
            except Exception as e:  # noqa: BLE001 - a record whose trace no longer replays cannot be proposed
                log.debug("tuning record does not replay on its workload: %s", e)
        return known

    def add(self, mod) -> bool:
        """Add ``mod``; False if it (a structurally equal module) was already in the set."""
        import tvm_ffi

        bucket = self._by_hash.setdefault(tvm_ffi.structural_hash(mod), [])
        if any(tvm_ffi.structural_equal(mod, m) for m in bucket):
            return False
        bucket.append(mod)
        return True

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_hash.values())


# Batches in a row whose candidates were all measured before, after which the search counts as exhausted.
MAX_MEASURED_BATCHES = 16


def skip_measured(inner):
    """``inner`` (a MetaSchedule search strategy) with every candidate already measured removed before
    measurement: the database's records of the task's workload (read at pre-tuning) and the candidates of
    this session. MetaSchedule's EvolutionarySearch only deduplicates within a session (its measured set
    starts empty; the database's records seed its population and come back as candidates), so without this a
    resumed `hwcomp tune` can measure a stored candidate again and store it twice. Candidates dropped here
    are not sent to the builder, so they do not count as trials; a batch that loses all its candidates is
    replaced by the next one (up to MAX_MEASURED_BATCHES in a row, then the task ends as exhausted)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

    @derived_object
    class SkipMeasured(PySearchStrategy):
        def __init__(self, inner) -> None:
            self.inner = inner
            self.workload = None
            self.measured: MeasuredSet | None = None
            self.dropped = 0

        def _initialize_with_tune_context(self, context) -> None:
            self.workload = context.mod
            self.inner._initialize_with_tune_context(context)

        def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
            self.measured = MeasuredSet.from_database(database, self.workload)
            self.dropped = 0
            self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

        def post_tuning(self) -> None:
            if self.dropped:
                log.info("%d candidate(s) proposed again were not measured again", self.dropped)
            self.inner.post_tuning()
            self.measured = None

        def generate_measure_candidates(self):
            for _ in range(MAX_MEASURED_BATCHES):
                candidates = self.inner.generate_measure_candidates()
                if candidates is None:
                    return None
                fresh = [c for c in candidates if self.measured.add(c.sch.mod)]
                self.dropped += len(candidates) - len(fresh)
                if fresh or not candidates:  # an empty batch: the inner search counts those itself
                    return fresh
            return None

        def notify_runner_results(self, measure_candidates, results) -> None:
            self.inner.notify_runner_results(measure_candidates, results)

        def clone(self):
            return SkipMeasured(self.inner.clone())

    return SkipMeasured(inner)


@dataclass
class TuneOptions:
    trials: int                        # per-task budget, counted in the database
    per_iter: int = 16                 # candidates measured per batch
    builder_workers: int | None = None
    number: int = 3                    # runs per measurement
    min_repeat_ms: int = 50
    seed: int | None = None
    population: int = 512              # evolutionary search population (MetaSchedule's default)
    genetic_iters: int = 4
    build_timeout_s: int = 300
    run_timeout_s: int = 120
    runner: object = None              # an ms Runner; None: local
    extra: dict = field(default_factory=dict)


BUILD_FUNC = "hwcomp.meta_schedule.build"


def builder_worker_init() -> None:
    """Initializer of MetaSchedule's builder workers: TVM's tensor intrinsics, and :data:`BUILD_FUNC`, which
    compiles as ``hwcomp compile`` does. MetaSchedule's default build has neither hwcomp's CUDA hooks (the
    device functions hwcomp's GEMV, wgmma GEMM and warp layer norm call; sm_90a for wgmma), so hwcomp's own
    kernels failed to build as baselines, nor its pass config (cp.async for pipelined copies), so candidates
    were measured otherwise than they would run."""
    import tvm_ffi

    import_tensor_intrinsics()
    if tvm_ffi.get_global_func(BUILD_FUNC, allow_missing=True) is None:
        tvm_ffi.register_global_func(BUILD_FUNC, _build_like_compile)


def _build_like_compile(mod, target, _params):
    from tvm.driver import build as tvm_build  # a runtime Module, as MetaSchedule's export expects
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    from .build import pass_context

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    with target, pass_context():
        return tvm_build(mod, target=target)


def _measure_us(builder, runner, func, target) -> float | None:
    """Build and time one scheduled PrimFunc with MetaSchedule's builder and runner (as its candidates are)."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    (built,) = builder.build([ms.builder.BuilderInput(mod, target)])
    if built.error_msg:
        log.warning("hwcomp's schedule failed to build for measurement: %s", built.error_msg.strip()[-300:])
        return None
    (fut,) = runner.run([ms.runner.RunnerInput(built.artifact_path, target.kind.name,
                                               ms.arg_info.ArgInfo.from_prim_func(func))])
    res = fut.result()
    secs = None if res.error_msg else _mean_secs(res.run_secs)
    return None if secs is None else secs * 1e6


def measure_baselines(tasks: list[TuneTask], baselines: dict, builder, runner, target, db_dir: Path) -> None:
    """Time hwcomp's own schedule of each task (once per database) so that `compile --tuning-db` only takes a
    tuned record that beats it; kept in the manifest as ``hwcomp_us``."""
    known = (read_manifest(db_dir) or {}).get("tasks", {})
    for t in tasks:
        if t.hwcomp_us is None:
            t.hwcomp_us = known.get(t.name, {}).get("hwcomp_us")
        if t.hwcomp_us is None and t.name in baselines:
            t.hwcomp_us = _measure_us(builder, runner, baselines[t.name], target)


def tune(tasks: list[TuneTask], target, db_dir: Path, opts: TuneOptions,
         on_progress: Callable[[Progress], None] | None = None, baselines: dict | None = None) -> dict:
    """Tune ``tasks`` up to ``opts.trials`` records each in the database at ``db_dir``.

    ``baselines`` maps a task name to hwcomp's scheduled PrimFunc for it (``LoweredModel.kernel_schedules``):
    each is measured once beside the candidates, and records that do not beat it are not applied.

    Returns a session summary (also appended to the manifest). KeyboardInterrupt propagates after the
    manifest is updated; the records measured so far stay in the database.
    """
    from tvm.s_tir import meta_schedule as ms

    if opts.trials < 1:
        raise TuningError(f"--trials {opts.trials}: need at least 1 trial per task")
    if not tasks:
        raise TuningError("no kernels to tune (check --ops and that the model lowers to fused kernels)")
    db_dir = Path(db_dir)
    import_tensor_intrinsics()
    db = open_database(db_dir, target, create=True)
    record_counts(db, tasks)
    before = {t.name: t.existing for t in tasks}
    todo = [t for t in tasks if t.existing < opts.trials]
    if todo:
        try:
            import xgboost  # noqa: F401
        except ImportError:
            raise TuningError("MetaSchedule's XGBoost cost model needs the xgboost package: pip install xgboost "
                              "(or pip install 'apache-tvm[meta-schedule]')") from None
    t0 = time.perf_counter()
    status = "complete"
    workers = opts.builder_workers or max(1, os.cpu_count() or 1)
    # Generous timeouts: each builder batch starts fresh worker processes, and importing TVM there takes
    # 10-30 s on a loaded 2-core machine (MetaSchedule's 30 s default turned every candidate into an error).
    # The builder's workers import tvm.s_tir.tensor_intrin too (minutes each, see import_tensor_intrinsics).
    builder = ms.builder.LocalBuilder(max_workers=workers, timeout_sec=opts.build_timeout_s,
                                      initializer=builder_worker_init, f_build=BUILD_FUNC)
    evaluator = ms.runner.EvaluatorConfig(number=opts.number, repeat=1, min_repeat_ms=opts.min_repeat_ms,
                                          enable_cpu_cache_flush=False)
    runner = opts.runner or ms.runner.LocalRunner(evaluator_config=evaluator, timeout_sec=opts.run_timeout_s)
    if baselines:  # every task, also those with enough trials: a database from before baselines gets them
        measure_baselines(tasks, baselines, builder, runner, target, db_dir)
    # Tasks that still miss the same number of trials are tuned together (one task scheduler each group).
    groups: dict[int, list[TuneTask]] = {}
    for t in todo:
        groups.setdefault(opts.trials - t.existing, []).append(t)
    sigint = _SigintSeen()
    try:
        with sigint, tempfile.TemporaryDirectory(prefix="hwcomp-tune-") as work_dir:
            for missing, group in sorted(groups.items(), reverse=True):
                # EvolutionarySearch only knows what it measured in this session (its database records
                # seed the population but do not count as measured), so a resumed session could measure
                # a database record again; SkipMeasured drops those before they reach the builder.
                strategy = skip_measured(ms.search_strategy.EvolutionarySearch(
                    population_size=opts.population, init_min_unmeasured=min(50, opts.population),
                    genetic_num_iters=opts.genetic_iters))
                ctxs, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    [t.extracted for t in group], work_dir, strategy=strategy, num_threads=workers, seed=opts.seed)
                _quiet_meta_schedule_console()
                callbacks = ms.measure_callback.MeasureCallback.create("default") + [
                    _progress_callback(group, opts.trials, on_progress, lambda: sigint.seen)]
                ms.tune_tasks(tasks=ctxs, task_weights=weights, work_dir=work_dir,
                              max_trials_global=missing * len(group), max_trials_per_task=missing,
                              num_trials_per_iter=max(1, min(opts.per_iter, missing)), builder=builder,
                              runner=runner, database=db, cost_model="xgb", measure_callbacks=callbacks,
                              task_scheduler="gradient")
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as e:
        # Ctrl-C inside a Python callback that MetaSchedule's C++ loop called comes back as a TVM error.
        if sigint.seen or "KeyboardInterrupt" in f"{type(e).__name__}: {e}":
            status = "interrupted"
            raise KeyboardInterrupt from None
        status = "failed"
        raise
    finally:
        db = open_database(db_dir, target)  # re-read what reached the files
        record_counts(db, tasks)
        session = {"status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (
            time.perf_counter() - t0))), "seconds": round(time.perf_counter() - t0, 1), "trials_per_task": opts.trials,
            "added": {t.name: t.existing - before[t.name] for t in tasks if t.existing != before[t.name]},
            "runner": type(runner).__name__}
        update_manifest(db_dir, tasks, session)
        pack_compressed(db_dir)
    return session


class _SigintSeen:
    """Ctrl-C during a session: the first SIGINT is only noted, and the measure callback raises
    KeyboardInterrupt after the batch in flight (a Python exception raised at an arbitrary point inside
    MetaSchedule's C++ loop can end in std::terminate); a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.seen, self._prev = False, None

    def _handler(self, signum, frame):
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        import signal
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)


def _quiet_meta_schedule_console() -> None:
    """MetaSchedule logs its task table to stdout; keep it in its log files unless hwcomp runs with -v."""
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        return
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("tvm.s_tir.meta_schedule") and isinstance(lg, logging.Logger):
            for h in list(lg.handlers):
                if type(h) is logging.StreamHandler:
                    lg.removeHandler(h)


# ---------------------------------------------------------------- compile --tuning-db

def apply_database(mod, target, db_dir: str | os.PathLike):
    """Replace the kernels that have records in ``db_dir`` by their best tuned schedule.

    Untuned kernels are left as they are for hwcomp's schedules / dlight (which skip functions marked
    ``tirx.is_scheduled``). Kernels taken from the database carry the function attribute
    ``hwcomp.schedule_source = "tuning-db"``; :func:`database_kernels` lists them.
    """
    from tvm import relax, tirx

    d = resolve_db_dir(db_dir, target)
    if not d.is_dir():
        raise TuningDatabaseError(f"--tuning-db {db_dir}: no such directory; create it with `hwcomp tune`")
    db = open_database(d, target)
    import_tensor_intrinsics()

    def scheduled(m) -> set[str]:
        return {gv.name_hint for gv, f in m.functions.items() if isinstance(f, tirx.PrimFunc) and f.attrs
                and f.attrs.get("tirx.is_scheduled", False)}

    pre = scheduled(mod)
    with target, db:
        out = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    applied = sorted(scheduled(out) - pre)
    for name in applied:
        gv = out.get_global_var(name)
        out.update_func(gv, out[gv].with_attr(SCHEDULE_SOURCE_ATTR, "tuning-db"))
    n_prim = sum(1 for f in out.functions.values() if isinstance(f, tirx.PrimFunc))
    log.info("tuning database %s: %d of %d kernels tuned (%s)", d, len(applied), n_prim, ", ".join(applied) or "none")
    return out


def hwcomp_preferred(db_dir: str | os.PathLike, target) -> set[str]:
    """Kernels whose best record in the database is not faster than hwcomp's own schedule (both measured in
    the tuning session): `compile --tuning-db` keeps hwcomp's schedule for these."""
    tasks = (read_manifest(resolve_db_dir(db_dir, target)) or {}).get("tasks", {})
    return {name for name, t in tasks.items() if t.get("hwcomp_us") is not None
            and (t.get("best_us") is None or t["hwcomp_us"] <= t["best_us"])}


def database_kernels(mod) -> list[str]:
    """Names of the kernels whose schedule came from the tuning database (see :func:`apply_database`)."""
    from tvm import tirx

    return sorted(gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc) and f.attrs
                  and f.attrs.get(SCHEDULE_SOURCE_ATTR, "") == "tuning-db")


def summarize(tasks: list[TuneTask]) -> list[dict]:
    return [{"task": t.name, "op_class": t.op_class, "weight": t.weight, "gflop": round(t.flops / 1e9, 4),
             "records": t.existing, "best_us": None if t.best_us is None else round(t.best_us, 3),
             "best_gflops": None if not t.best_us else round(t.gflops(t.best_us * 1e-6), 2),
             "hwcomp_us": None if t.hwcomp_us is None else round(t.hwcomp_us, 3)} for t in tasks]


def weighted_best_us(tasks: list[TuneTask]) -> float:
    """Sum over tasks of weight x best time (NaN if any task is unmeasured)."""
    return sum(t.weight * (t.best_us if t.best_us is not None else math.nan) for t in tasks)
