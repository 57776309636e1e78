"""The Qt binding the app runs on must not leak or drop references on every call."""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QLabel


def test_a_qt_call_returning_nothing_leaves_none_alone(qapp) -> None:
    # PySide6 6.12.0 on Python 3.11 took one reference from None per such call: the app aborted after a few
    # thousand of them ("Fatal Python error: none_dealloc").
    label = QLabel()
    before = sys.getrefcount(None)
    for i in range(500):
        label.setText(str(i))
        QCoreApplication.processEvents()
    assert sys.getrefcount(None) - before > -50
