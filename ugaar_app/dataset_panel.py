"""Datasets: build the embedded default or import a folder/file; the build report; features."""
from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QSpinBox, QTextBrowser, QVBoxLayout, QWidget)

from model.sources.lmd_archive import cache_root

from .bridge import SessionBridge
from .controller import AppController, datasets_dir, default_dataset_dir
from .workers import Task

SOURCES = [
    ("music21-corpus", "Embedded default — music21 corpus (no download)", False),
    ("lmd-npy", "Lyrics–melody .npy release (folder with Syllable_Parsing/)", True),
    ("midi", "MIDI / karaoke files (.mid, .kar) — folder or file", True),
    ("musicxml", "MusicXML / kern / ABC with lyrics — folder or file", True),
]

STAGE_NAMES = {"list": "Listing sources", "parse": "Reading and cleaning songs", "audio": "Rendering audio",
               "sheet": "Engraving sheet music (LilyPond)", "manifest": "Writing the manifest",
               "open": "Opening"}


def summary_html(summary: dict[str, Any]) -> str:
    """The build report in readable HTML: counts, renderers, skipped files and why."""
    e = html.escape
    sp = summary.get("samples_per_split", {})
    songs = summary.get("songs_per_split", {})
    rows = "".join(f"<tr><td>{e(k)}</td><td align=right>{sp.get(k, 0)}</td><td align=right>{songs.get(k, 0)}</td></tr>"
                   for k in ("train", "val", "test"))
    out = [f"<h3>{e(Path(summary.get('root', '')).name)}</h3>",
           f"<p><b>{summary.get('samples', 0)}</b> samples from <b>{summary.get('songs', 0)}</b> songs"
           f" · hash <code>{e(str(summary.get('content_hash', ''))[:12])}</code></p>",
           f"<table cellspacing=0 cellpadding=3><tr><th align=left>split</th><th>samples</th><th>songs</th></tr>{rows}</table>"]
    src = summary.get("samples_per_source", {})
    if src:
        out.append("<p>Sources: " + ", ".join(f"{e(k)} {v}" for k, v in src.items()) + "</p>")
    rend = summary.get("renderers", {})
    if rend:
        parts = []
        for k, v in rend.items():
            if isinstance(v, dict):
                parts.append(f"{e(k)}: {e(str(v.get('name', '')))} {e(str(v.get('version', '')))}".strip())
            else:
                parts.append(f"{e(k)}: {e(str(v))}")
        out.append("<p>Renderers: " + "; ".join(parts) + "</p>")
    for key, title in (("windows", "Windows"), ("duplicates", "Duplicates"), ("cleaning", "Cleaning")):
        val = summary.get(key)
        if isinstance(val, dict) and val:
            items = ", ".join(f"{e(str(k))}: {e(str(v))}" for k, v in val.items() if not isinstance(v, (list, dict)))
            if items:
                out.append(f"<p>{title}: {items}</p>")
    skipped = list(summary.get("skipped", [])) + list(summary.get("render_failures", []))
    if skipped:
        out.append(f"<p><b>{len(skipped)} skipped</b> (file — reason):</p><ul>")
        for item in skipped[:300]:
            if isinstance(item, dict):
                path = item.get("path") or item.get("sample_id") or item.get("item") or ""
                reason = item.get("reason") or item.get("error") or ""
            else:
                path, reason = str(item), ""
            out.append(f"<li><code>{e(str(path))}</code> — {e(str(reason))}</li>")
        if len(skipped) > 300:
            out.append(f"<li>… and {len(skipped) - 300} more</li>")
        out.append("</ul>")
    else:
        out.append("<p>No files skipped.</p>")
    return "\n".join(out)


def onsets_text(features: Any) -> str:
    """How a FeatureSet's audio tokens were cut, in a sentence (empty for features without sequences)."""
    config = features.meta.get("config") or {}
    if not features.has_sequences:
        return ""
    if config.get("onset_method") == "learned":
        return " Audio onsets: learned detector."
    from model.features.config import FeatureConfig

    window = FeatureConfig.from_dict(config).onset_window  # its rule for a config saved before the field
    chosen = ", chosen on the dataset's notes" if (features.meta.get("onset_picking") or {}).get("chosen") else ""
    return (f" Audio onsets: spectral flux (threshold {config.get('onset_delta', 0.05):g}"
            f" over {window} row{'s' if window != 1 else ''}{chosen}).")


#: The label's tooltip: what the choice of onsets and timbres means for a user's recordings.
FEATURES_TIP = ("Audio in other timbres than these may retrieve worse (docs/features.md, timbre augmentation). "
                "Spectral-flux onsets miss the soft starts of bowed, blown and sung notes; for such recordings "
                "extract with ugaar features extract DATASET --onset-method learned (docs/benchmarks.md).")


class DatasetPanel(QWidget):
    """Open, build/import with progress and cancel, show the report, extract features."""

    def __init__(self, bridge: SessionBridge, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.controller = controller
        self.task: Optional[Task] = None
        self.feature_task: Optional[Task] = None

        # -- open
        self.known = QListWidget()
        self.known.setMaximumHeight(110)
        self.open_btn = QPushButton("Open")
        self.browse_open_btn = QPushButton("Open folder…")
        self.refresh_btn = QPushButton("Refresh")
        open_box = QGroupBox("Datasets on this machine")
        ol = QVBoxLayout(open_box)
        ol.addWidget(self.known)
        ob = QHBoxLayout()
        ob.addWidget(self.open_btn)
        ob.addWidget(self.browse_open_btn)
        ob.addStretch(1)
        ob.addWidget(self.refresh_btn)
        ol.addLayout(ob)

        # -- build
        self.source = QComboBox()
        for kind, label, _needs in SOURCES:
            self.source.addItem(label, kind)
        self.path = QLineEdit(placeholderText="folder or file to import")
        self.browse_btn = QPushButton("Browse…")
        self.browse_file_btn = QPushButton("File…")
        self.name = QLineEdit(placeholderText="dataset name")
        self.limit = QSpinBox()
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.limit.setToolTip("Read only the first N items of the source (0 = all)")
        self.workers = QSpinBox()
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setValue(max(1, min(2, os.cpu_count() or 1)))
        # audio rendering: the synthesiser, and for FluidSynth a SoundFont and GM program of one's choice
        self.renderer = QComboBox()
        for kind, label in (("auto", "auto (FluidSynth when available)"), ("fluidsynth", "FluidSynth"),
                            ("builtin", "built-in synthesiser")):
            self.renderer.addItem(label, kind)
        self.soundfont = QLineEdit(placeholderText="SoundFont (.sf2); empty = TimGM6mb")
        self.soundfont_btn = QPushButton("SoundFont…")
        self.program = QSpinBox()
        self.program.setRange(0, 127)
        self.program.setToolTip("General MIDI program: 0 piano, 19 organ, 24 guitar, 40 violin, 48 strings, "
                                "52 choir, 56 trumpet, 71 clarinet, 73 flute")
        self.build_btn = QPushButton("Build dataset")
        self.build_btn.setObjectName("primary")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.stage = QLabel("")
        self.stage.setObjectName("muted")
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        build_box = QGroupBox("Build or import")
        form = QFormLayout(build_box)
        form.addRow("Source", self.source)
        prow = QHBoxLayout()
        prow.addWidget(self.path, 1)
        prow.addWidget(self.browse_btn)
        prow.addWidget(self.browse_file_btn)
        form.addRow("Path", prow)
        form.addRow("Name", self.name)
        lrow = QHBoxLayout()
        lrow.addWidget(self.limit)
        lrow.addWidget(QLabel("Workers"))
        lrow.addWidget(self.workers)
        lrow.addStretch(1)
        form.addRow("Limit", lrow)
        rrow = QHBoxLayout()
        rrow.addWidget(self.renderer)
        rrow.addWidget(QLabel("Program"))
        rrow.addWidget(self.program)
        rrow.addStretch(1)
        form.addRow("Audio", rrow)
        srow = QHBoxLayout()
        srow.addWidget(self.soundfont, 1)
        srow.addWidget(self.soundfont_btn)
        form.addRow("SoundFont", srow)
        brow = QHBoxLayout()
        brow.addWidget(self.build_btn)
        brow.addWidget(self.cancel_btn)
        brow.addStretch(1)
        form.addRow(brow)
        form.addRow(self.bar)
        form.addRow(self.stage)

        # -- features
        self.features_label = QLabel("No dataset open")
        self.features_label.setWordWrap(True)
        self.features_btn = QPushButton("Extract features")
        self.features_cancel = QPushButton("Cancel")
        self.features_cancel.setEnabled(False)
        self.features_bar = QProgressBar()
        self.features_bar.setVisible(False)
        feat_box = QGroupBox("Features (audio CNN, sheet CNN, skip-gram lyrics)")
        fl = QVBoxLayout(feat_box)
        fl.addWidget(self.features_label)
        fr = QHBoxLayout()
        fr.addWidget(self.features_btn)
        fr.addWidget(self.features_cancel)
        fr.addStretch(1)
        fl.addLayout(fr)
        fl.addWidget(self.features_bar)

        left = QVBoxLayout()
        left.addWidget(open_box)
        left.addWidget(build_box)
        left.addWidget(feat_box)
        left.addStretch(1)
        self.report = QTextBrowser()
        self.report.setOpenExternalLinks(False)
        self.report.setHtml("<p>No dataset open. Build the embedded default (music21 corpus) — "
                            "no download needed — or import your own files.</p>")
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Build report</b>"))
        right.addWidget(self.report, 1)
        layout = QHBoxLayout(self)
        lw = QWidget()
        lw.setLayout(left)
        lw.setMaximumWidth(520)
        layout.addWidget(lw, 1)
        layout.addLayout(right, 1)

        self.source.currentIndexChanged.connect(self._on_source)
        self.browse_btn.clicked.connect(self._browse_folder)
        self.browse_file_btn.clicked.connect(self._browse_file)
        self.soundfont_btn.clicked.connect(self._browse_soundfont)
        self.renderer.currentIndexChanged.connect(lambda _i: self._on_renderer())
        self._on_renderer()
        self.build_btn.clicked.connect(lambda: self.start_build())
        self.cancel_btn.clicked.connect(self.cancel_build)
        self.open_btn.clicked.connect(self._open_selected)
        self.known.itemDoubleClicked.connect(lambda _i: self._open_selected())
        self.browse_open_btn.clicked.connect(self._browse_open)
        self.refresh_btn.clicked.connect(self.refresh_known)
        self.features_btn.clicked.connect(lambda: self.start_features())
        self.features_cancel.clicked.connect(self.cancel_features)
        bridge.dataset_changed.connect(self._on_dataset)
        bridge.features_changed.connect(lambda _f: self._update_features_label())
        self._on_source()
        self.refresh_known()
        self._on_dataset(self.session.dataset)

    # ---- open ----------------------------------------------------------------------------
    def refresh_known(self) -> None:
        self.known.clear()
        folders: list[Path] = []
        root = datasets_dir()
        if root.is_dir():
            folders += sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())
        bench = cache_root() / "bench"  # where benchmarks/ build the shared datasets
        if bench.is_dir():
            folders += sorted(p for p in bench.iterdir() if (p / "manifest.json").is_file())
        current = str(self.session.dataset.root) if self.session.dataset is not None else None
        if current is not None and Path(current) not in folders:
            folders.insert(0, Path(current))
        for p in folders:
            item = QListWidgetItem(f"{p.name}    —  {p}")
            item.setData(Qt.UserRole, str(p))
            if str(p) == current:
                f = item.font()
                f.setBold(True)
                item.setFont(f)
            self.known.addItem(item)
        if not folders:
            self.known.addItem("(none yet)")

    def _open_selected(self) -> None:
        item = self.known.currentItem()
        path = item.data(Qt.UserRole) if item is not None else None
        if path:
            self.controller.open_dataset(path)

    def _browse_open(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", str(datasets_dir()))
        if path:
            self.controller.open_dataset(path)

    # ---- build -------------------------------------------------------------------------------
    def _on_source(self) -> None:
        kind = self.source.currentData()
        needs = dict((k, n) for k, _l, n in SOURCES)[kind]
        for w in (self.path, self.browse_btn, self.browse_file_btn):
            w.setEnabled(needs)
        self.browse_file_btn.setEnabled(kind in ("midi", "musicxml"))
        if not self.name.isModified():
            self.name.setText("music21-default" if kind == "music21-corpus" else self._name_from_path())

    def _name_from_path(self) -> str:
        p = self.path.text().strip()
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(p).stem or "imported") if p else "imported"

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to import")
        if path:
            self.path.setText(path)
            if not self.name.isModified():
                self.name.setText(self._name_from_path())

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "File to import", "",
                                              "Scores and MIDI (*.mid *.midi *.kar *.xml *.musicxml *.mxl *.krn *.abc);;All files (*)")
        if path:
            self.path.setText(path)
            if not self.name.isModified():
                self.name.setText(self._name_from_path())

    def _on_renderer(self) -> None:
        fluid = self.renderer.currentData() != "builtin"
        for w in (self.soundfont, self.soundfont_btn, self.program):
            w.setEnabled(fluid)

    def _browse_soundfont(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a SoundFont", "/usr/share/sounds/sf2",
                                              "SoundFonts (*.sf2 *.sf3);;All files (*)")
        if path:
            self.soundfont.setText(path)

    def make_config(self) -> Any:
        from model.data.dataset import BuildConfig
        kind = self.source.currentData()
        path = self.path.text().strip() or None
        if kind != "music21-corpus" and not path:
            raise ValueError("choose a folder or file to import")
        if path and not Path(path).exists():
            raise ValueError(f"{path} does not exist")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name.text().strip()) or "dataset"
        out = default_dataset_dir() if (kind == "music21-corpus" and name == "music21-default") else datasets_dir() / name
        renderer = self.renderer.currentData()
        soundfont = self.soundfont.text().strip() or None if renderer != "builtin" else None
        if soundfont and not Path(soundfont).is_file():
            raise ValueError(f"SoundFont {soundfont} does not exist")
        return BuildConfig(source=kind, path=None if kind == "music21-corpus" else path, out=str(out),
                           limit=self.limit.value() or None, workers=self.workers.value(),
                           audio_renderer=renderer, soundfont=soundfont,
                           program=self.program.value() if renderer != "builtin" else 0)

    def start_build(self, config: Any = None, then: Any = None) -> Optional[Task]:
        if self.task is not None and not self.task.done:
            self.session.notify("warning", "A build is already running.")
            return None
        try:
            config = config if config is not None else self.make_config()
        except ValueError as exc:
            self.session.notify("error", f"Cannot build: {exc}")
            return None
        self.bar.setVisible(True)
        self.bar.setRange(0, 0)
        self.stage.setText(f"Building into {config.out} …")
        self.build_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.task = self.controller.build_dataset(config, then=then)
        self.task.progress.connect(self._on_progress)
        self.task.ended.connect(self._on_build_ended)
        self.task.failed.connect(lambda msg: self.stage.setText(f"<span style='color:#d9534f'>{html.escape(msg)}</span>"))
        return self.task

    def cancel_build(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.stage.setText("Cancelling after the current item…")

    def _on_progress(self, p: Any) -> None:
        name = STAGE_NAMES.get(p.stage, p.stage)
        if p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
            self.stage.setText(f"{name}: {p.done}/{p.total} {p.message}")
        else:
            self.bar.setRange(0, 0)
            self.stage.setText(f"{name} … {p.message}")

    def _on_build_ended(self) -> None:
        self.build_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.bar.setVisible(False)
        if self.task is not None and self.task.error is None:
            self.stage.setText("Cancelled — run the build again to resume." if self.task.result is None
                               else "Done.")
        self.refresh_known()

    def _on_dataset(self, dataset: Any) -> None:
        if dataset is None:
            self.report.setHtml("<p>No dataset open. Build the embedded default (music21 corpus) — "
                                "no download needed — or import your own files.</p>")
        else:
            try:
                self.report.setHtml(summary_html(dataset.summary()))
            except Exception as exc:  # noqa: BLE001
                self.report.setPlainText(f"Cannot summarise the dataset: {exc}")
        self._update_features_label()
        self.refresh_known()

    # ---- features ----------------------------------------------------------------------------
    def _update_features_label(self) -> None:
        ds, fs = self.session.dataset, self.session.features
        if ds is None:
            self.features_label.setText("No dataset open.")
            self.features_btn.setEnabled(False)
        elif fs is None:
            self.features_label.setText("Not extracted yet. Extraction pre-trains the audio and sheet encoders on "
                                        "the training split, then embeds every sample (cached).")
            self.features_btn.setEnabled(True)
        else:
            dims = ", ".join(f"{m} {fs.modality(m).shape[1]}-d" for m in ("audio", "sheet", "lyrics"))
            timbres = fs.meta.get("timbres") or []
            heard = (" The audio encoder was trained on: " + "; ".join(timbres) + ".") if timbres else ""
            self.features_label.setText(f"Cached: {len(fs)} samples ({dims}).{heard}{onsets_text(fs)}")
            self.features_label.setToolTip(FEATURES_TIP)
            self.features_btn.setEnabled(True)

    def start_features(self, then: Any = None) -> Optional[Task]:
        if self.feature_task is not None and not self.feature_task.done:
            return None
        task = self.controller.extract_features(then=then)
        if task is None:
            return None
        self.feature_task = task
        self.features_bar.setVisible(True)
        self.features_bar.setRange(0, 0)
        self.features_btn.setEnabled(False)
        self.features_cancel.setEnabled(True)
        task.progress.connect(self._on_feature_progress)
        task.ended.connect(self._on_features_ended)
        return task

    def cancel_features(self) -> None:
        if self.feature_task is not None:
            self.feature_task.cancel()

    def _on_feature_progress(self, p: Any) -> None:
        if p.total:
            self.features_bar.setRange(0, p.total)
            self.features_bar.setValue(p.done)
        else:
            self.features_bar.setRange(0, 0)
        self.features_label.setText(f"{p.stage}: {p.done}/{p.total or '?'} {p.message}")

    def _on_features_ended(self) -> None:
        self.features_bar.setVisible(False)
        self.features_cancel.setEnabled(False)
        self._update_features_label()
