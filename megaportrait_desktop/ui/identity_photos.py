"""An identity's photos under the Identities list: see them, with their quality warnings; remove some;
check the set as a whole (one photo, near-duplicates, an expression unlike the reference's).

Thumbnails and the set check run off the GUI thread; removing a photo is one project write per photo.
"""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..project import Project, ProjectError
from .drops import FileDrops
from .empty_hints import set_empty_hint
from .thumbnails import load_thumbnail, load_thumbnails, set_icons, with_badge
from .workers import run_in_background

THUMB = 88


def photo_tip(original_name: str, width: int, height: int, quality: dict) -> str:
    """A photo's tooltip: its name and size, then each quality warning."""
    issues = [i.get("message", "") for i in quality.get("issues", []) if isinstance(i, dict)]
    return "\n".join([f"{original_name} ({width}×{height})", *(f"⚠ {m}" for m in issues if m)])


class IdentityPhotos(QWidget):
    """The selected identity's photos as a strip of thumbnails (⚠ on those with warnings)."""

    photos_changed = Signal(int)          # identity id: photos were removed
    import_requested = Signal(int, list)  # identity id, dropped files

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.identity_id = 0
        self.reference_id = 0
        self.list = QListWidget()
        self.list.setObjectName("identityPhotos")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 10, THUMB + 10))
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setMinimumHeight(THUMB + 24)
        self.list.setToolTip("The identity's photos (⚠: a quality warning; hover to read it). Double-click to see "
                             "one large; drop more photos here.")
        set_empty_hint(self.list, "No photos yet: drop photos of the client here, or Add photos…")
        self.remove = QPushButton(qta.icon("mdi6.image-remove"), "Remove")
        self.remove.setToolTip("Remove the selected photos from this identity (Delete)")
        self.check = QPushButton(qta.icon("mdi6.check-decagram"), "Check set")
        self.check.setToolTip("Check the set as a whole against the selected reference: one photo only, "
                              "near-duplicates, several faces, an expression unlike the reference's")
        self.summary = QLabel("")
        self.summary.setObjectName("identitySetSummary")
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.remove)
        buttons.addWidget(self.check)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self.drops = FileDrops(self.list)
        self.drops.dropped.connect(lambda paths, _: self.identity_id and self.import_requested.emit(self.identity_id,
                                                                                                      paths))
        self.remove.clicked.connect(lambda: self.remove_selected())  # not clicked's bool as ``confirm``
        self.check.clicked.connect(self.check_set)
        self.list.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self._workers: list = []
        self.viewer: QDialog | None = None
        self._update_buttons()

    def show_identity(self, project: Project | None, identity_id: int) -> None:
        """List ``identity_id``'s photos (none: an empty strip)."""
        self.project, self.identity_id = project, identity_id
        self.list.clear()
        self.summary.setText("")
        thumbs = []
        if project is not None and identity_id:
            photos = project.identity_photos(identity_id)
            for photo in photos:
                warn = not photo.quality.get("ok", True)
                item = QListWidgetItem(qta.icon("mdi6.account-box-outline"), "")
                item.setData(Qt.ItemDataRole.UserRole, photo.id)
                item.setData(Qt.ItemDataRole.UserRole + 1, warn)
                item.setToolTip(photo_tip(photo.original_name, photo.width, photo.height, photo.quality))
                self.list.addItem(item)
                thumbs.append((photo.id, str(project.path_of(photo.path))))
            warnings = sum(not p.quality.get("ok", True) for p in photos)
            self.summary.setText(f"{len(photos)} photo(s)" + (f", ⚠ {warnings} with warnings (hover to read)"
                                                              if warnings else ""))
        self._update_buttons()
        if thumbs:
            self._start(load_thumbnails, thumbs, THUMB, True, on_done=self._on_thumbs_loaded)

    def selected_ids(self) -> list[int]:
        return [int(item.data(Qt.ItemDataRole.UserRole)) for item in self.list.selectedItems()]

    def remove_selected(self, confirm: bool = True) -> None:
        """Remove the selected photos from the identity (their files go once nothing else uses them)."""
        ids = self.selected_ids()
        if not ids or self.project is None:
            return
        if confirm:
            answer = QMessageBox.question(self, "Remove photos", f"Remove {len(ids)} photo(s) from this identity? "
                                          "Outputs made with them stay in History.")
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            for photo_id in ids:
                self.project.delete_identity_photo(photo_id)
        except ProjectError as exc:
            QMessageBox.warning(self, "Remove photos", str(exc))
        identity_id = self.identity_id
        self.show_identity(self.project, identity_id)
        self.photos_changed.emit(identity_id)

    def check_set(self) -> None:
        """The set-level checks (:func:`project.imports.identity_set_issues`), against the selected reference."""
        from ..project.imports import identity_set_issues

        if self.project is None or not self.identity_id:
            return
        self.summary.setText("Checking the set…")
        identity_id = self.identity_id
        self._start(identity_set_issues, self.project, identity_id, self.reference_id or None,
                    on_done=lambda issues: self._on_checked(identity_id, issues))

    def _on_checked(self, identity_id: int, issues) -> None:
        if identity_id != self.identity_id:
            return
        count = self.list.count()
        if not issues:
            self.summary.setText(f"✓ {count} photo(s): no problem with the set as a whole.")
        else:
            self.summary.setText(f"{count} photo(s):\n" + "\n".join(f"⚠ {i.message}" for i in issues))

    def _on_thumbs_loaded(self, thumbs) -> None:
        # a photo with a warning gets an orange "!"
        set_icons(self.list, thumbs, lambda item, image: with_badge(image, "!", "#c77c02")
                  if item.data(Qt.ItemDataRole.UserRole + 1) else image)

    def _on_item_double_clicked(self, item: QListWidgetItem) -> None:
        photo_id = int(item.data(Qt.ItemDataRole.UserRole))
        photo = next((p for p in self.project.identity_photos(self.identity_id) if p.id == photo_id), None)
        if photo is None:
            return
        path = str(self.project.path_of(photo.path))
        self.viewer = _PhotoViewer(item.toolTip(), self)
        self.viewer.show()
        self._start(load_thumbnail, path, 900, on_done=self.viewer.show_image)

    def _update_buttons(self) -> None:
        self.remove.setEnabled(bool(self.list.selectedItems()))
        self.check.setEnabled(bool(self.identity_id) and self.list.count() > 0)

    def _start(self, fn, *args, on_done) -> None:
        worker = run_in_background(fn, *args, on_done=on_done, on_error=lambda exc: self.summary.setText(str(exc)))
        self._workers = [w for w in self._workers if w.is_running] + [worker]


class _PhotoViewer(QDialog):
    """One identity photo, large, with its warnings."""

    def __init__(self, text: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle(text.splitlines()[0])
        self.setObjectName("photoViewer")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.image = QLabel("Loading…")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.image)
        scroll.setWidgetResizable(True)
        notes = QLabel(text)
        notes.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(notes)
        self.resize(760, 820)

    def show_image(self, image) -> None:
        self.image.setPixmap(QPixmap.fromImage(image))
