"""A neutral dark theme for judging photos: mid-dark greys (no colour cast), one accent colour."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from ..core.paths import resources_dir

ACCENT = "#4f8fd6"


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    grey = {"window": "#2b2b2b", "base": "#1f1f1f", "alt": "#262626", "text": "#e2e2e2", "button": "#333333",
            "mid": "#444444", "disabled": "#7a7a7a"}
    for role, colour in ((QPalette.ColorRole.Window, grey["window"]), (QPalette.ColorRole.WindowText, grey["text"]),
                         (QPalette.ColorRole.Base, grey["base"]), (QPalette.ColorRole.AlternateBase, grey["alt"]),
                         (QPalette.ColorRole.ToolTipBase, grey["button"]),
                         (QPalette.ColorRole.ToolTipText, grey["text"]),
                         (QPalette.ColorRole.Text, grey["text"]), (QPalette.ColorRole.Button, grey["button"]),
                         (QPalette.ColorRole.ButtonText, grey["text"]), (QPalette.ColorRole.Mid, grey["mid"]),
                         (QPalette.ColorRole.Highlight, ACCENT), (QPalette.ColorRole.HighlightedText, "#ffffff"),
                         (QPalette.ColorRole.Link, ACCENT)):
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(grey["disabled"]))
    app.setPalette(palette)
    sheet = resources_dir() / "style" / "dark.qss"
    if sheet.is_file():
        app.setStyleSheet(sheet.read_text(encoding="utf-8"))
