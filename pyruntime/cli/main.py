"""`pyruntime` / `python -m pyruntime`: argparse with one subparser per subcommand.

Exit codes: 0 ok, 2 usage error (unknown flag, bad value: argparse's own), 1 failure (a
missing or corrupt model file, an unavailable device, any error at run time) reported
as one line on stderr; `--debug` prints the traceback too, `--quiet` only errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Sequence

from . import bench, compress, convert, demo, info, serve

#: subcommand modules, each with add_parser(subparsers) and run(args) -> int
SUBCOMMANDS = (info, convert, compress, bench, serve, demo)


def _common() -> argparse.ArgumentParser:
    """--quiet/--debug, accepted before and after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print errors only")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print tracebacks and debug logs")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="pyruntime", parents=[common],
                                     description="pyruntime: compile, run and serve models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in SUBCOMMANDS:
        mod.add_parser(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)       # usage errors exit 2 here
    args.quiet = getattr(args, "quiet", False)
    args.debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if args.debug else
                        logging.ERROR if args.quiet else logging.WARNING,
                        format="pyruntime: %(levelname)s: %(message)s")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:         # `pyruntime info | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except SystemExit:
        raise
    except Exception as e:          # one line, the traceback only with --debug
        if args.debug:
            traceback.print_exc()
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"pyruntime {args.command}: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1
