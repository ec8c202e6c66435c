"""Typer app and the error boundary: the library raises HwcompError, only this module prints it."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from rich.console import Console

from ..errors import HwcompError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hwcomp: hardware-aware compiler for transformer inference (ONNX -> CUDA / systolic-array RTL).")
console = Console()
err_console = Console(stderr=True)

# Command modules, imported for their @app.command registrations. Missing ones are skipped so that
# a partial checkout still runs what it has.
COMMAND_MODULES = ["inspect", "run", "quantize", "compile", "simulate", "tune", "demo"]


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show full tracebacks and debug logs"),
          verbose: bool = typer.Option(False, "-v", "--verbose", help="info logs")) -> None:
    os.environ["HWCOMP_DEBUG"] = "1" if debug else os.environ.get("HWCOMP_DEBUG", "")
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


for _m in COMMAND_MODULES:
    try:
        importlib.import_module(f"{__package__}.{_m}")
    except ModuleNotFoundError as e:  # only a missing command module itself is tolerated
        if e.name != f"{__package__}.{_m}":
            raise


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except HwcompError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("error: interrupted")
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # click usage errors and the like
        import click
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        if debug:
            raise
        err_console.print(f"[bold red]internal error:[/] {type(e).__name__}: {e} (rerun with --debug for the "
                          "traceback and please report it)", highlight=False, soft_wrap=True)
        return 1
    return 0
