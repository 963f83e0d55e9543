"""Entry point of ``ugaar-app`` (replaced by the full window in the GUI issue)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication(sys.argv if argv is None else argv)
    label = QLabel("UGAAR Explorer")
    label.show()
    return app.exec()
