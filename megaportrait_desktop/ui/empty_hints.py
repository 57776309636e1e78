"""What to do next, written in an empty list (no identities, no references, no outputs yet), and the
welcome line on the very first start."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QFrame, QHBoxLayout, QLabel, QToolButton, QWidget
from shiboken6 import isValid

#: The docks' hints (also the README's "first hour" section).
IDENTITIES_HINT = "No clients yet.\nClick New and add photos of the client,\nor drop photos here to start one."
REFERENCES_HINT = "No references yet.\nDrop the portraits to work on here,\nor click Import…."
HISTORY_HINT = ("No outputs yet. Choose an identity and a reference, then Run all (Ctrl+R):\n"
                "every finished run lands here with its identity score.")
WELCOME = ("Welcome to MegaPortrait. This is the demo project: press Run all (Ctrl+R) to see Grace Hopper's face in "
           "the astronaut portrait. File → New Project starts your own; Help → Keyboard shortcuts (F1) lists the "
           "keys; Models → Model Manager installs the diffusion engine's models.")


class _EmptyHint(QObject):
    """Keeps a hint label centred in a view's viewport, visible only while the view has no rows."""

    def __init__(self, view: QAbstractItemView, text: str) -> None:
        super().__init__(view)
        self.view = view
        self.label = QLabel(text, view.viewport())
        self.label.setObjectName("emptyHint")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        self.label.setStyleSheet("color: #8a8a8a;")
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # drops still reach the list
        model = view.model()
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.layoutChanged):
            signal.connect(self.update)
        view.viewport().installEventFilter(self)
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            self.label.setGeometry(self.view.viewport().rect().adjusted(8, 8, -8, -8))
        return False

    def update(self, *_) -> None:
        if not isValid(self.view):
            return  # the list is being destroyed (its model empties itself on the way out)
        self.label.setGeometry(self.view.viewport().rect().adjusted(8, 8, -8, -8))
        self.label.setVisible(self.view.model().rowCount() == 0)


def set_empty_hint(view: QAbstractItemView, text: str) -> QLabel:
    """Write ``text`` in ``view`` while it is empty; returns the label (its text may change later)."""
    hint = _EmptyHint(view, text)
    view.empty_hint = hint  # a Python reference for the hint's life
    return hint.label


def empty_hint(view: QAbstractItemView) -> QLabel | None:
    hint = getattr(view, "empty_hint", None)
    return hint.label if hint is not None else None


def show_welcome(window) -> QWidget:
    """The first start's welcome line above the canvas, with a close button (it does not come back)."""
    from .recent import settings

    banner = QFrame()
    banner.setObjectName("welcomeBanner")
    banner.setStyleSheet("QFrame#welcomeBanner { background: #24415f; border-radius: 4px; }")
    text = QLabel(WELCOME)
    text.setWordWrap(True)
    close = QToolButton()
    close.setText("✕")
    close.setToolTip("Close; this hint does not come back")
    row = QHBoxLayout(banner)
    row.setContentsMargins(8, 4, 4, 4)
    row.addWidget(text, 1)
    row.addWidget(close)

    def dismiss() -> None:
        banner.hide()
        s = settings()
        s.setValue("welcomed", True)
        s.sync()
    close.clicked.connect(dismiss)
    window.stage_view.layout().insertWidget(0, banner)
    window.welcome = banner
    return banner


def update_canvas_hint(window) -> None:
    """What the empty canvas says: the next step for the project as it is."""
    project = window.project
    if project is None:
        text = "Open a project (File → Open Project) or create one (File → New Project)."
    elif not project.references():
        text = ("Next: add the portrait to work on. Drop it on References (left), or References → Import….\n"
                "The client's photos go in Identities: New, then drop their photos on it.")
    elif not window.session.reference_id:
        text = "Choose a reference in References to see it here."
    else:
        text = "Loading…"
    window.canvas.hint = text
    window.canvas.viewport().update()
    welcome = getattr(window, "welcome", None)
    if welcome is not None and welcome.isVisible() and project is not None and project.name != "Demo":
        welcome.hide()  # it speaks of the demo project


def first_start() -> bool:
    """No project was ever opened and the welcome was never closed."""
    from .recent import recent_projects, settings

    return not recent_projects() and not settings().value("welcomed", False, type=bool)
