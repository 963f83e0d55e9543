"""Non-blocking messages: a list of everything said, newest first."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QStyle,
                               QVBoxLayout, QWidget)

from .bridge import SessionBridge

_ICONS = {"info": QStyle.SP_MessageBoxInformation, "warning": QStyle.SP_MessageBoxWarning,
          "error": QStyle.SP_MessageBoxCritical}


class NotificationArea(QWidget):
    """Every session message with time and level; errors never block the window."""

    def __init__(self, bridge: SessionBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(bar)
        self.unread = 0
        bridge.message.connect(self.add)

    def add(self, level: str, text: str) -> None:
        item = QListWidgetItem(self.style().standardIcon(_ICONS.get(level, _ICONS["info"])),
                               f"{time.strftime('%H:%M:%S')}  {text}")
        item.setData(Qt.UserRole, level)
        item.setToolTip(text)
        self.list.insertItem(0, item)
        if level in ("warning", "error"):
            self.unread += 1

    def clear(self) -> None:
        self.list.clear()
        self.unread = 0

    def texts(self) -> list[str]:
        return [self.list.item(i).toolTip() for i in range(self.list.count())]
