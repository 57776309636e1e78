"""Single-key tools (as in Photoshop and Krita), the shortcut list, shortcuts in button tooltips, and
actions that are enabled only when they can do something.

Every shortcut is a ``QAction`` on the window, so the list (Help → Keyboard shortcuts) is read from
the actions themselves and cannot drift from what the keys do. Single keys never fire while a text
field has the focus: Qt lets a focused line edit or spin box take a printable key first.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .menus import action

#: Mouse gestures, listed with the keys (they have no action to read them from).
GESTURES = (("Canvas", "Wheel", "Zoom in or out under the pointer"),
            ("Canvas", "Drag", "Pan (paint, while Paint mask is on)"),
            ("Canvas", "Drag the before/after line", "Move the split between reference and result"),
            ("Sliders", "Double-click", "Back to the default value"),
            ("History", "Delete", "Delete the selected outputs (Edit → Undo delete brings them back)"),
            ("Identities", "F2 or double-click", "Rename the selected identity"))


def keys_text(act: QAction) -> str:
    return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts())


def build_tool_actions(w) -> None:
    """The single-key tools of a :class:`.main_window.MainWindow`, as ``w.act_*`` (in the View menu's Tools)."""
    editor = w.mask_editor
    w.act_brush = action(w, "Brush", "mdi6.brush", lambda: _tool(w, editor.brush_button), "B")
    w.act_eraser = action(w, "Eraser", "mdi6.eraser", lambda: _tool(w, editor.eraser_button), "E")
    w.act_swap = action(w, "Swap brush and eraser", "mdi6.swap-horizontal", editor.swap_tool, "X")
    w.act_smaller = action(w, "Smaller brush", "mdi6.minus", lambda: editor.grow_brush(0.8), "[")
    w.act_larger = action(w, "Larger brush", "mdi6.plus", lambda: editor.grow_brush(1.25), "]")
    w.act_paint = action(w, "Paint mask", "mdi6.draw", editor.paint_toggle.toggle, "P")
    w.act_compare = action(w, "Before/after", "mdi6.compare", w.stage_view.toggle_compare, "\\")
    w.act_shortcuts = action(w, "&Keyboard shortcuts", "mdi6.keyboard", lambda: show_shortcuts(w), "F1")
    for act in (w.act_brush, w.act_eraser, w.act_swap, w.act_smaller, w.act_larger, w.act_paint, w.act_compare):
        w.addAction(act)  # window-wide, also while the menus are hidden


def finish_actions(w) -> None:
    """After the actions exist: their shortcuts in the buttons' tooltips, Cancel following the worker."""
    annotate(w)
    follow_worker(w)


def annotate(w) -> None:
    """Name each button's shortcut in its tooltip (the actions' own tooltips already do, see ``menus.action``)."""
    for widget, act in ((w.panel.run_all, w.act_run), (w.panel.cancel, w.act_cancel),
                        (w.history.buttons["export"], w.act_export), (w.stage_view.compare, w.act_compare)):
        tip = widget.toolTip() or act.text().replace("&", "")
        widget.setToolTip(f"{tip} ({keys_text(act)})")


class _CancelFollower(QObject):
    """Enables Cancel only while a job runs or waits. A QObject of the GUI thread, so the worker's signals
    (emitted on its own thread) reach it queued: a plain function connected to them would run there."""

    def __init__(self, w) -> None:
        super().__init__(w)
        self.w = w
        for signal in (w.worker.queue_changed, w.worker.started, w.worker.finished, w.worker.failed,
                       w.worker.cancelled):
            signal.connect(self._on_worker_changed)
        self.update()

    def _on_worker_changed(self, *_) -> None:
        self.update()
        QTimer.singleShot(100, self.update)  # the worker clears its current job just after it reports

    def update(self) -> None:
        self.w.act_cancel.setEnabled(self.w.worker.busy)


def follow_worker(w) -> QObject:
    """Cancel is enabled only while a job runs or waits (Undo and Redo follow the mask, see the window)."""
    w.cancel_follower = _CancelFollower(w)
    return w.cancel_follower


def _tool(w, button: QAbstractButton) -> None:
    """B and E choose the tool and start painting at once (the tool alone would do nothing visible)."""
    button.setChecked(True)
    if not w.mask_editor.paint_toggle.isChecked():
        w.mask_editor.paint_toggle.setChecked(True)


def shortcut_rows(w) -> list[tuple[str, str, str]]:
    """(where, keys, what) for every action with a shortcut, by menu, then the mouse gestures."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()
    for menu_action in w.menuBar().actions():
        menu = menu_action.menu()
        for act in _menu_actions(menu):
            if act.shortcuts() and id(act) not in seen:
                seen.add(id(act))
                rows.append((menu_action.text().replace("&", ""), keys_text(act), act.text().replace("&", "")))
    for act in w.actions():
        if act.shortcuts() and id(act) not in seen:
            seen.add(id(act))
            rows.append(("Tools", keys_text(act), act.text().replace("&", "")))
    return rows + list(GESTURES)


def _menu_actions(menu) -> list[QAction]:
    out = []
    for act in menu.actions():
        out.extend(_menu_actions(act.menu()) if act.menu() else [act])
    return out


def show_shortcuts(w) -> QDialog:
    """Help → Keyboard shortcuts: every key and gesture in one table."""
    dialog = QDialog(w)
    dialog.setObjectName("shortcutsDialog")
    dialog.setWindowTitle("Keyboard shortcuts")
    rows = shortcut_rows(w)
    table = QTableWidget(len(rows), 3)
    table.setHorizontalHeaderLabels(["Where", "Keys", "What"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for row, cells in enumerate(rows):
        for column, text in enumerate(cells):
            table.setItem(row, column, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    dialog.resize(620, 560)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    w.shortcuts_dialog = dialog
    dialog.show()
    return dialog


def widget_shortcut(widget: QWidget, keys: str, slot) -> QAction:
    """A shortcut that works only while ``widget`` (a list) has the focus: Delete in History, F2 in Identities."""
    act = QAction(widget)
    act.setShortcut(keys)
    act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    act.triggered.connect(slot)
    widget.addAction(act)
    return act
