"""Does this PySide6 take a reference from ``None`` on each call of a Qt method that returns nothing?

PySide6 6.12.0 does on Python 3.11 (where ``None`` is not immortal): every ``setText``, ``setValue``,
``processEvents``… drops ``None``'s reference count by one, and after a few thousand calls the process
aborts with "Fatal Python error: none_dealloc". 6.11.3 does not. Prints the change per call; asserts
nothing. Run: ``.venv/bin/python benchmarks/pyside_none_refcount.py`` (it may abort on a bad version).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import PySide6  # noqa: E402
from PySide6.QtCore import QCoreApplication, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel  # noqa: E402


def per_call(fn, calls: int = 200) -> float:
    before = sys.getrefcount(None)
    for i in range(calls):
        fn(i)
    return (sys.getrefcount(None) - before) / calls


if __name__ == "__main__":
    print(f"PySide6 {PySide6.__version__}, Python {sys.version.split()[0]}; None's reference count: "
          f"{sys.getrefcount(None)}", flush=True)
    app = QApplication([])
    label, timer = QLabel(), QTimer()
    for name, fn in (("QLabel.setText", lambda i: label.setText(str(i))),
                     ("QTimer.setInterval", lambda i: timer.setInterval(5)),
                     ("QCoreApplication.processEvents", lambda i: QCoreApplication.processEvents()),
                     ("QLabel.text (returns a value)", lambda i: label.text())):
        print(f"{name}: {per_call(fn):+.2f} per call (0 is right)", flush=True)
