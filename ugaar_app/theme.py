"""A dark Fusion palette and a small style sheet shared by all widgets."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#3d8fd1"
MODALITY_COLORS = {"audio": (66, 165, 245), "sheet": (255, 167, 38), "lyrics": (102, 187, 106)}
SPLIT_COLORS = {"train": (120, 144, 156), "val": (171, 71, 188), "test": (239, 83, 80)}

STYLE = f"""
QLabel#title {{ font-size: 15px; font-weight: 600; }}
QLabel#muted {{ color: #9aa4ad; }}
QLabel#warning {{ color: #f0ad4e; }}
QLabel#lyrics {{ font-size: 15px; padding: 4px 0; }}
QLabel#hero {{ font-size: 22px; font-weight: 600; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border: none; padding: 6px 14px;
                      border-radius: 4px; font-weight: 600; }}
QPushButton#primary:disabled {{ background: #3a4450; color: #8a949d; }}
QPushButton#primary:hover {{ background: #4a9de0; }}
QGroupBox {{ font-weight: 600; border: 1px solid #3a4148; border-radius: 5px; margin-top: 10px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; }}
QDockWidget::title {{ background: #2b3036; padding: 4px 6px; }}
QTabBar::tab {{ padding: 6px 14px; }}
QTabBar::tab:selected {{ border-bottom: 2px solid {ACCENT}; }}
QFrame#sep {{ color: #3a4148; }}
QStatusBar QLabel {{ padding: 0 6px; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    base = QColor(32, 36, 40)
    window = QColor(40, 44, 49)
    text = QColor(222, 226, 230)
    pal.setColor(QPalette.Window, window)
    pal.setColor(QPalette.WindowText, text)
    pal.setColor(QPalette.Base, base)
    pal.setColor(QPalette.AlternateBase, QColor(37, 41, 46))
    pal.setColor(QPalette.ToolTipBase, QColor(50, 55, 61))
    pal.setColor(QPalette.ToolTipText, text)
    pal.setColor(QPalette.Text, text)
    pal.setColor(QPalette.Button, QColor(50, 55, 61))
    pal.setColor(QPalette.ButtonText, text)
    pal.setColor(QPalette.BrightText, QColor("white"))
    pal.setColor(QPalette.Highlight, QColor(ACCENT))
    pal.setColor(QPalette.HighlightedText, QColor("white"))
    pal.setColor(QPalette.Link, QColor(ACCENT))
    pal.setColor(QPalette.PlaceholderText, QColor(130, 138, 146))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor(120, 126, 132))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)
