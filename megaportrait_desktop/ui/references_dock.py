"""References dock: a thumbnail gallery with drag-and-drop import and a face-count badge."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..project import Project
from .empty_hints import REFERENCES_HINT, set_empty_hint
from .identities_dock import IMAGE_FILTER
from .thumbnails import load_thumbnails, set_icons, with_badge
from .widgets import current_item_id, select_item_id
from .workers import run_in_background

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


class _Gallery(QListWidget):
    files_dropped = Signal(list)

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(112, 112))
        self.setGridSize(QSize(128, 142))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)  # an item view gets drops through its viewport (else none arrive)
        self.setDropIndicatorShown(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        paths = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)


class ReferencesDock(QDockWidget):
    reference_changed = Signal(int)   # selected reference id (0 = none)
    import_requested = Signal(list)   # file paths

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("References", parent)
        self.setObjectName("referencesDock")
        self.project: Project | None = None
        self.gallery = _Gallery()
        self.gallery.setObjectName("referencesGallery")
        set_empty_hint(self.gallery, REFERENCES_HINT)
        add = QPushButton(qta.icon("mdi6.image-plus"), "Import…")
        delete = QPushButton(qta.icon("mdi6.delete"), "")
        delete.setToolTip("Delete the reference and its masks (outputs stay in History)")
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(delete)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.gallery)
        layout.addLayout(row)
        self.setWidget(body)
        self.gallery.currentItemChanged.connect(lambda *_: self.reference_changed.emit(self.current_id()))
        self.gallery.files_dropped.connect(self.import_requested)
        add.clicked.connect(self._on_add_clicked)
        delete.clicked.connect(self._on_delete_clicked)
        self._thumb_worker = None
        self._counts: dict[int, int] = {}

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def current_id(self) -> int:
        return current_item_id(self.gallery)

    def select(self, reference_id: int) -> None:
        select_item_id(self.gallery, reference_id)

    def refresh(self) -> None:
        keep = self.current_id()
        self.gallery.blockSignals(True)
        self.gallery.clear()
        thumbs = []
        self._counts = {}
        if self.project is not None:
            for ref in self.project.references():
                item = QListWidgetItem(qta.icon("mdi6.image"), ref.name)
                item.setData(Qt.ItemDataRole.UserRole, ref.id)
                item.setToolTip(f"{ref.original_name}\n{ref.width}×{ref.height}, {ref.face_count} face(s)")
                self.gallery.addItem(item)
                self._counts[ref.id] = ref.face_count
                thumbs.append((ref.id, str(self.project.path_of(ref.path))))
        self.gallery.blockSignals(False)
        if keep:
            self.select(keep)
        if self.gallery.currentRow() < 0 and self.gallery.count():
            self.gallery.setCurrentRow(0)
        if thumbs:
            self._thumb_worker = run_in_background(load_thumbnails, thumbs, 112, True, on_done=self._on_thumbs_loaded)

    def _on_thumbs_loaded(self, thumbs) -> None:
        set_icons(self.gallery, thumbs, lambda item, image: with_badge(
            image, str(self._counts.get(item.data(Qt.ItemDataRole.UserRole), 0))))
        self.gallery.viewport().update()  # nothing of the placeholder icons stays painted

    def _on_add_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import reference portraits", "", IMAGE_FILTER)
        if files:
            self.import_requested.emit(files)

    def _on_delete_clicked(self) -> None:
        reference_id = self.current_id()
        if not reference_id or self.project is None:
            return
        answer = QMessageBox.question(self, "Delete reference",
                                      "Delete this reference and its masks? Its outputs stay in History.")
        if answer == QMessageBox.StandardButton.Yes:
            self.project.delete_reference(reference_id)
            self.refresh()
