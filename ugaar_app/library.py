"""Library: the table of samples with text and split filters.

Selecting a row selects the sample everywhere.  The multi-sample selection
(``session.map_selection``) is shared with the map both ways: several rows
selected here (Ctrl/Shift+click) are ringed in the map, and a box or lasso in
the map selects its samples' rows and restricts the table to them until
cleared.
Songs are named by :func:`model.data.labels.sample_label` (first words of the
lyrics for hash-named LMD songs); the sample id keeps a column of its own.
With an active run, *Rank* is where the sample's true partners rank (median
of the six directions), sortable for error analysis.  The text typed in the
filter also highlights the matching samples in the map.
"""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import (QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex,
                            QSortFilterProxyModel, Qt)
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QPushButton, QTableView, QVBoxLayout, QWidget)

import numpy as np

from model.data.labels import sample_label
from model.search.partner_rank import format_rank

from .bridge import SessionBridge

COLUMNS = ("Song", "Split", "Source", "Lyrics", "Rank", "Id")
SONG, SPLIT, SOURCE, LYRICS, RANK, ID = range(len(COLUMNS))
SAMPLE_ID_ROLE = Qt.UserRole + 1
SORT_ROLE = Qt.UserRole + 2


class LibraryModel(QAbstractTableModel):
    """Rows = samples of the current dataset (read-only)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, str, str, str, str]] = []
        self._row_of: dict[str, int] = {}
        self._ranks: dict[str, float] = {}
        self._cap: Optional[int] = None

    def set_samples(self, samples: list[Any]) -> None:
        self.beginResetModel()
        rows = []
        for s in samples:
            words = s.words
            first = " ".join(words[:8]) + (" …" if len(words) > 8 else "")
            rows.append((sample_label(s), s.split, s.source, first, s.sample_id))
        self._rows = rows
        self._row_of = {r[4]: i for i, r in enumerate(rows)}
        self._ranks = {}
        self.endResetModel()

    def set_ranks(self, ids: Optional[list[str]], ranks: Any, cap: Optional[int] = None) -> None:
        """Partner rank per sample id (None clears the column); ranks at ``cap`` (K + 1) show as "> K"."""
        self._ranks = ({} if ids is None or ranks is None
                       else {sid: float(r) for sid, r in zip(ids, np.asarray(ranks))})
        self._cap = cap if self._ranks else None
        if self._rows:
            self.dataChanged.emit(self.index(0, RANK), self.index(len(self._rows) - 1, RANK))

    def rank(self, sample_id: str) -> Optional[float]:
        return self._ranks.get(sample_id)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = index.column()
        if col == RANK:
            rank = self._ranks.get(row[4])
            if role == Qt.DisplayRole:
                return format_rank(rank, self._cap)
            if role == Qt.ToolTipRole:
                if rank is None:
                    return "no active run"
                text = "rank of this sample's true partners, median of the six directions (1 = retrieved first)"
                if self._cap is not None:  # a large run: ranked from the retrieval index's top K
                    text += (f"; ranked within the retrieval index's top {self._cap - 1}, a partner beyond it "
                             f"counts as {self._cap} (\u201c> {self._cap - 1}\u201d)")
                return text
            if role == SORT_ROLE:
                return float("inf") if rank is None else rank
        elif role in (Qt.DisplayRole, Qt.ToolTipRole):
            return row[col if col < RANK else 4]
        elif role == SORT_ROLE:
            return str(row[col if col < RANK else 4]).lower()
        if role == SAMPLE_ID_ROLE:
            return row[4]
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def row_of(self, sample_id: str) -> Optional[int]:
        return self._row_of.get(sample_id)

    def sample_id(self, row: int) -> str:
        return self._rows[row][4]


class LibraryFilter(QSortFilterProxyModel):
    """Case-insensitive text filter over song, lyrics and id; split filter; id subset."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._split = ""
        self._ids: Optional[set[str]] = None

    def set_text(self, text: str) -> None:
        self._text = text.strip().lower()
        self.invalidateFilter()

    def set_split(self, split: str) -> None:
        self._split = split
        self.invalidateFilter()

    def set_ids(self, ids: Optional[list[str]]) -> None:
        self._ids = set(ids) if ids else None
        self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        model: LibraryModel = self.sourceModel()  # type: ignore[assignment]
        r = model._rows[row]
        if self._split and r[1] != self._split:
            return False
        if self._ids is not None and r[4] not in self._ids:
            return False
        return self.matches_text(r)

    def matches_text(self, r: tuple[str, str, str, str, str]) -> bool:
        """Does library row ``r`` match the typed text (every word, in song, lyrics, id or source)?"""
        if self._text:
            hay = f"{r[0]} {r[3]} {r[4]} {r[2]}".lower()
            return all(tok in hay for tok in self._text.split())
        return True

    def text_matches(self) -> list[str]:
        """Ids of the samples matching the typed text alone (empty when no text)."""
        if not self._text:
            return []
        model: LibraryModel = self.sourceModel()  # type: ignore[assignment]
        return [r[4] for r in model._rows if self.matches_text(r)]


class LibraryWidget(QWidget):
    """Filter bar + table; mirrors and drives ``session.selected``."""

    ORIGIN = "library"

    def __init__(self, bridge: SessionBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self._syncing = False  # True while the table's selection is set from the session (no echo)
        self.model = LibraryModel(self)
        self.proxy = LibraryFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setSortRole(SORT_ROLE)  # ranks sort as numbers, unranked rows last

        self.search = QLineEdit(placeholderText="Filter by song, lyrics or id  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(100)
        self.split_box = QComboBox()
        self.split_box.addItems(["All splits", "train", "val", "test"])
        self.count_label = QLabel("No dataset")
        self.count_label.setObjectName("muted")
        self.count_label.setWordWrap(True)
        self.map_sel_label = QLabel()
        self.clear_map_sel = QPushButton("Show all")
        self.clear_map_sel.setToolTip("Clear the selection of several samples (the map's box or lasso, or the rows)")
        self.map_sel_bar = QWidget()
        mb = QHBoxLayout(self.map_sel_bar)
        mb.setContentsMargins(0, 0, 0, 0)
        mb.addWidget(self.map_sel_label, 1)
        mb.addWidget(self.clear_map_sel)
        self.map_sel_bar.hide()

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)  # several rows: ringed in the map
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.resizeSection(0, 120)
        header.resizeSection(1, 44)
        header.resizeSection(2, 92)
        header.setSectionResizeMode(LYRICS, QHeaderView.Stretch)
        header.resizeSection(RANK, 44)
        header.resizeSection(ID, 90)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        header.setSectionHidden(RANK, True)  # shown once the active run's ranks are known

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.split_box)
        self.setMinimumWidth(260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.map_sel_bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count_label)

        self.search.textChanged.connect(self._on_text)
        self.split_box.currentIndexChanged.connect(self._on_split)
        self.clear_map_sel.clicked.connect(lambda: self.session.set_map_selection([], origin=self.ORIGIN))
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.table.selectionModel().selectionChanged.connect(lambda _s, _d: self._on_rows_selected())
        bridge.dataset_changed.connect(self._on_dataset)
        bridge.selection_changed.connect(self._on_selection)
        bridge.map_selection_changed.connect(self._on_map_selection)
        bridge.partner_ranks_changed.connect(self._on_ranks)
        self._on_dataset(self.session.dataset)

    # ---- session → view ---------------------------------------------------------
    def _on_dataset(self, dataset: Any) -> None:
        samples = dataset.samples if dataset is not None else []
        self.model.set_samples(samples)
        # one source only: its column says nothing
        self.table.horizontalHeader().setSectionHidden(2, len({s.source for s in samples}) <= 1)
        self._update_count()

    def _on_ranks(self, ranks: Any) -> None:
        self.model.set_ranks(self.session.embedding_ids, ranks, getattr(self.session, "partner_rank_cap", None))
        self.table.horizontalHeader().setSectionHidden(RANK, ranks is None)

    def _on_selection(self, sample_id: Optional[str], origin: str) -> None:
        if origin == self.ORIGIN:
            return
        self.show_sample(sample_id)
        if self.session.map_selection and self.session.map_selection_origin == self.ORIGIN:
            # one sample chosen elsewhere replaces the rows selected here, in the map too
            self.session.set_map_selection([], origin=self.ORIGIN)

    def show_sample(self, sample_id: Optional[str]) -> None:
        sel = self.table.selectionModel()
        sel.blockSignals(True)
        try:
            if sample_id is None:
                sel.clearSelection()
                return
            row = self.model.row_of(sample_id)
            if row is None:
                return
            pidx = self.proxy.mapFromSource(self.model.index(row, 0))
            if not pidx.isValid():  # filtered out: clear the filters so it shows
                self.search.blockSignals(True)
                self.search.clear()
                self.search.blockSignals(False)
                self.proxy.set_text("")
                self.session.set_highlight([])
                if self.split_box.currentIndex() != 0:
                    self.split_box.blockSignals(True)
                    self.split_box.setCurrentIndex(0)
                    self.split_box.blockSignals(False)
                    self.proxy.set_split("")
                pidx = self.proxy.mapFromSource(self.model.index(row, 0))
            if pidx.isValid():
                sel.setCurrentIndex(pidx, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
                self.table.scrollTo(pidx)
        finally:
            sel.blockSignals(False)
            self._update_count()

    def _on_map_selection(self, ids: list[str]) -> None:
        mine = self.session.map_selection_origin == self.ORIGIN
        # rows chosen here stay in their table; a box or lasso in the map lists its samples alone
        self.proxy.set_ids(ids if ids and not mine else None)
        if ids:
            self.map_sel_label.setText(f"<b>{len(ids)}</b> samples selected" +
                                       (" — ringed in the map" if mine else " in the map"))
            self.clear_map_sel.setText("Clear" if mine else "Show all")
            self.map_sel_bar.show()
        else:
            self.map_sel_bar.hide()
        if not mine:
            self._select_rows(ids)
        elif not ids and len(self.selected_ids()) > 1:
            self._select_rows([])
        self._update_count()

    def _select_rows(self, ids: list[str]) -> None:
        """Make the table's selected rows ``ids`` (empty: the current row alone), without echoing back."""
        sel = self.table.selectionModel()
        selection = QItemSelection()
        for sid in ids or ([self.session.selected] if self.session.selected else []):
            row = self.model.row_of(sid)
            pidx = self.proxy.mapFromSource(self.model.index(row, 0)) if row is not None else QModelIndex()
            if pidx.isValid():
                selection.select(pidx, pidx)
        self._syncing = True
        try:
            sel.select(selection, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        finally:
            self._syncing = False

    def _on_rows_selected(self) -> None:
        """Several rows selected here are the shared multi-sample selection (the map rings them)."""
        if self._syncing:
            return
        ids = self.selected_ids()
        if len(ids) > 1:
            if ids != self.session.map_selection or self.session.map_selection_origin != self.ORIGIN:
                self.session.set_map_selection(ids, origin=self.ORIGIN)
        elif self.session.map_selection and self.session.map_selection_origin == self.ORIGIN:
            self.session.set_map_selection([], origin=self.ORIGIN)

    # ---- view → session -------------------------------------------------------------
    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        sid = self.proxy.data(current, SAMPLE_ID_ROLE)
        self.session.select(sid, origin=self.ORIGIN)

    def _on_text(self, text: str) -> None:
        self.proxy.set_text(text)
        self.session.set_highlight(self.proxy.text_matches())
        self._update_count()

    def _on_split(self, index: int) -> None:
        self.proxy.set_split("" if index == 0 else self.split_box.currentText())
        self._update_count()

    def _update_count(self) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        if total == 0:
            self.count_label.setText("No dataset open — build or open one in the Datasets tab")
        elif shown == total:
            self.count_label.setText(f"{total} samples")
        else:
            self.count_label.setText(f"{shown} of {total} samples shown")

    def selected_ids(self) -> list[str]:
        """Sample ids of the selected rows, in table order."""
        rows = sorted(self.table.selectionModel().selectedRows(0), key=lambda i: i.row())
        return [self.proxy.data(i, SAMPLE_ID_ROLE) for i in rows]

    def selected_sample_id(self) -> Optional[str]:
        idx = self.table.selectionModel().currentIndex()
        return self.proxy.data(idx, SAMPLE_ID_ROLE) if idx.isValid() else None

    def visible_ids(self) -> list[str]:
        return [self.proxy.data(self.proxy.index(r, 0), SAMPLE_ID_ROLE) for r in range(self.proxy.rowCount())]
