"""``ugaar``: the command line over the headless core.

Each command group lives in its own module and registers its sub-parsers;
modules are imported lazily so ``ugaar --help`` stays fast and a missing
optional dependency in one group never breaks another.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from model.cli.failures import EXIT_INTERRUPTED, report_failure

# (command, module, help) — each module defines ``add_parser(subparsers)``
# whose sub-parsers set ``func`` via ``set_defaults``.
COMMANDS = [
    ("dataset", "model.cli.dataset_cmd", "build and inspect three-modality datasets"),
    ("features", "model.cli.features_cmd", "pre-train encoders and extract cached features"),
    ("train", "model.cli.train_cmd", "train UGAAR or a baseline"),
    ("evaluate", "model.cli.evaluate_cmd", "print the paper's Tables I and II for runs"),
    ("query", "model.cli.query_cmd", "retrieve partners of a sample, a lyrics line, a MIDI or a WAV"),
    ("lyrics-scorer", "model.cli.lyrics_scorer_cmd",
     "train a run's syllable-by-note pair scorer that re-ranks lyrics ↔ sheet / audio results"),
    ("map", "model.cli.map_cmd", "write a run's embedding map (shared or per-modality view) as CSV"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ugaar`` parser; with ``only``, import just that command's module.

    Importing every command group pulls in torch (~4 s); ``ugaar dataset
    info`` should not pay for it.
    """
    parser = argparse.ArgumentParser(prog="ugaar", description=__doc__.splitlines()[0])
    # main() takes --debug out of argv wherever it stands; this line lists it in --help
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of every error (also: UGAAR_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name, help_text in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command group not built yet
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # --debug is global: accepted before or after the command (docs/reliability.md)
    debug = "--debug" in argv or os.environ.get("UGAAR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    names = {name for name, _, _ in COMMANDS}
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in names else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; everything written so far is kept and a re-run resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line for the user's mistakes, a traceback for bugs
        return report_failure(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
