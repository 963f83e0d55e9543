"""Audio player bar: play/stop, position, volume, device status.

The :class:`~ugaar_app.audio.PlaybackClock` is the single source of the
playback position (a 30 Hz timer polls it), so the sheet cursor and the
syllable highlight move identically with or without a sound card.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QVBoxLayout,
                               QWidget)

from .audio import AudioOutput, PlaybackClock
from .bridge import SessionBridge


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


class PlayerWidget(QWidget):
    """Controls for the selected sample's audio; updates ``session.playback``."""

    def __init__(self, bridge: SessionBridge, output: Optional[AudioOutput] = None,
                 clock: Optional[PlaybackClock] = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.session = bridge.session
        self.output = output if output is not None else AudioOutput()
        self.clock = clock if clock is not None else PlaybackClock()
        self.audio: Optional[np.ndarray] = None
        self.sample_rate = 16000
        self.sample_id: Optional[str] = None
        self.loader: Optional[Callable[[str], tuple[np.ndarray, int]]] = None

        self.play_btn = QToolButton()
        self.play_btn.setIcon(self.style().standardIcon(QStyle.SP_MediaPlay))
        self.play_btn.setToolTip("Play / stop (Space)")
        self.play_btn.setAutoRaise(True)
        self.position = QSlider(Qt.Horizontal)
        self.position.setRange(0, 1000)
        self.position.setToolTip("Position")
        self.time_label = QLabel("0:00.0 / 0:00.0")
        self.time_label.setMinimumWidth(100)
        self.volume = QSlider(Qt.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(int(self.session.playback.volume * 100))
        self.volume.setMaximumWidth(90)
        self.volume.setToolTip("Volume")
        self.device_label = QLabel()
        self.device_label.setWordWrap(True)
        self.device_label.setObjectName("warning")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.play_btn)
        row.addWidget(self.position, 1)
        row.addWidget(self.time_label)
        row.addWidget(QLabel("Vol"))
        row.addWidget(self.volume)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.device_label)

        self.timer = QTimer(self)
        self.timer.setInterval(33)
        self.timer.timeout.connect(self._tick)
        self.play_btn.clicked.connect(self.toggle)
        self.position.sliderMoved.connect(self._seek)
        self.volume.valueChanged.connect(self._volume)
        self._show_device()
        self.setEnabled(False)

    # ---- public --------------------------------------------------------------
    @property
    def device_message(self) -> str:
        return "" if self.output.available else self.output.message

    def set_sample(self, sample: Any, loader: Optional[Callable[[str], tuple[np.ndarray, int]]]) -> None:
        self.stop()
        self.audio = None
        self.loader = loader
        self.sample_id = sample.sample_id if sample is not None else None
        duration = 0.0
        if sample is not None and sample.notes:
            first = sample.notes[0].onset
            duration = max(n.onset + n.duration for n in sample.notes) - first
        self.clock.duration = duration
        self.clock.seek(0.0)
        self.setEnabled(sample is not None)
        self._update_labels(0.0)
        self.session.set_playback(sample_id=self.sample_id, playing=False, position=0.0, duration=duration)

    def toggle(self) -> None:
        if self.clock.playing:
            self.stop()
        else:
            self.play()

    def play(self) -> None:
        if self.sample_id is None:
            return
        if self.audio is None and self.loader is not None:
            try:
                self.audio, self.sample_rate = self.loader(self.sample_id)
            except Exception as exc:  # noqa: BLE001 - missing/corrupt file
                self.session.notify("error", f"Cannot read the audio of {self.sample_id}: {exc}")
                self.audio = None
        duration = len(self.audio) / self.sample_rate if self.audio is not None else self.clock.duration
        start = self.clock.position if 0 < self.clock.position < duration - 0.05 else 0.0
        if self.audio is not None:
            self.output.set_volume(self.volume.value() / 100)
            if not self.output.play(self.audio, self.sample_rate, start):
                self._show_device()
        self.clock.start(duration, start)
        self.play_btn.setIcon(self.style().standardIcon(QStyle.SP_MediaStop))
        self.timer.start()
        self.session.set_playback(playing=True, position=start, duration=duration,
                                  device_ok=self.output.available, device_message=self.device_message)

    def stop(self) -> None:
        self.output.stop()
        self.clock.pause()
        self.timer.stop()
        self.play_btn.setIcon(self.style().standardIcon(QStyle.SP_MediaPlay))
        if self.session.playback.playing:
            self.session.set_playback(playing=False, position=self.clock.position)

    # ---- internals --------------------------------------------------------------
    def _tick(self) -> None:
        pos = self.clock.position
        playing = self.clock.playing
        self._update_labels(pos)
        self.session.set_playback(position=pos, playing=playing)
        if not playing:
            self.stop()
            self.clock.seek(0.0)

    def _update_labels(self, pos: float) -> None:
        dur = self.clock.duration
        self.position.blockSignals(True)
        self.position.setValue(int(1000 * pos / dur) if dur else 0)
        self.position.blockSignals(False)
        self.time_label.setText(f"{_fmt(pos)} / {_fmt(dur)}")

    def _seek(self, value: int) -> None:
        pos = value / 1000 * self.clock.duration
        was_playing = self.clock.playing
        if was_playing:
            self.stop()
        self.clock.seek(pos)
        self._update_labels(pos)
        self.session.set_playback(position=pos)
        if was_playing:
            self.play()

    def _volume(self, value: int) -> None:
        self.output.set_volume(value / 100)
        self.session.set_playback(volume=value / 100)

    def _show_device(self) -> None:
        msg = self.device_message
        self.device_label.setText(msg)
        self.device_label.setVisible(bool(msg))
        self.session.set_playback(device_ok=self.output.available, device_message=msg)
