"""python -m hwcomp.zoo [list | export NAME [--exporter E] [--attn A] [--static B S] | ops PATH]"""
from __future__ import annotations

import argparse
import json

from . import ATTNS, EXPORTERS, MODELS, SPECS, get, info, input_names, op_histogram, output_names


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m hwcomp.zoo")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    ex = sub.add_parser("export")
    ex.add_argument("name", choices=MODELS)
    ex.add_argument("--exporter", choices=EXPORTERS, default="legacy")
    ex.add_argument("--attn", choices=ATTNS, default="eager")
    ex.add_argument("--static", nargs=2, type=int, metavar=("BATCH", "SEQ"))
    ex.add_argument("--force", action="store_true")
    ops = sub.add_parser("ops")
    ops.add_argument("path")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for n in MODELS:
            print(f"{n:12s} {input_names(n)} -> {output_names(n)}  {SPECS[n].description}")
    elif a.cmd == "export":
        kw = dict(static=True, batch=a.static[0], seq=a.static[1]) if a.static else {}
        p = get(a.name, exporter=a.exporter, attn=a.attn, force=a.force, **kw)
        i = info(p)
        print(p)
        print(json.dumps({k: i[k] for k in ("export_seconds", "export_cpu_seconds", "nodes", "op_histogram")
                          if k in i}))
    else:
        for k, v in op_histogram(a.path).items():
            print(f"{v:6d} {k}")


if __name__ == "__main__":
    main()
