"""A tqdm progress bar per stage, fed by ``model.progress`` reports."""
from __future__ import annotations

import sys

from model.progress import Progress


class StageBar:
    """Callable progress sink for the CLI: a new bar whenever the stage changes.

    Pass it as ``progress=`` to a core function and call :meth:`close`
    afterwards (also on errors) so the terminal line is finished.
    """

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm  # imported on first use: keeps `ugaar --help` fast
        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
            self.bar = tqdm(total=p.total or None, desc=p.stage, unit="", file=sys.stderr,
                            dynamic_ncols=True)
        if self.bar is not None:
            if p.total and self.bar.total != p.total:
                self.bar.total = p.total
            self.bar.n = p.done
            if p.message:
                self.bar.set_postfix_str(p.message[:60], refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
