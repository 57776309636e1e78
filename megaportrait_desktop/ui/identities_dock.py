"""Identities dock: the identity sets with a thumbnail, photo count, quality warnings and training state."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..project import Project
from .thumbnails import load_thumbnails
from .widgets import current_item_id, select_item_id
from .workers import run_in_background

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.tif *.tiff *.webp)"


class IdentitiesDock(QDockWidget):
    identity_changed = Signal(int)          # selected identity id (0 = none)
    import_requested = Signal(int, list)    # identity id, file paths
    train_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Identities", parent)
        self.setObjectName("identitiesDock")
        self.project: Project | None = None
        self.list = QListWidget()
        self.list.setIconSize(QSize(56, 56))
        self.list.setObjectName("identitiesList")
        new = QPushButton(qta.icon("mdi6.account-plus"), "New")
        add = QPushButton(qta.icon("mdi6.image-plus"), "Add photos…")
        self.train = QPushButton(qta.icon("mdi6.school"), "Train")
        self.train.setToolTip("Train this identity's LoRA (diffusion engine; needs the base model)")
        delete = QPushButton(qta.icon("mdi6.delete"), "")
        delete.setToolTip("Delete the identity and its photos (outputs stay in History)")
        buttons = QHBoxLayout()
        for b in (new, add, self.train, delete):
            buttons.addWidget(b)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        new.clicked.connect(self._on_new_clicked)
        add.clicked.connect(self._on_add_clicked)
        self.train.clicked.connect(lambda: self.current_id() and self.train_requested.emit(self.current_id()))
        delete.clicked.connect(self._on_delete_clicked)
        self._thumb_worker = None

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def current_id(self) -> int:
        return current_item_id(self.list)

    def select(self, identity_id: int) -> None:
        select_item_id(self.list, identity_id)

    def refresh(self, training: dict[int, float] | None = None) -> None:
        keep = self.current_id()
        self.list.blockSignals(True)
        self.list.clear()
        thumbs = []
        if self.project is not None:
            for identity in self.project.identities():
                state = identity.training_state
                if training and identity.id in training:
                    state = f"training {training[identity.id]:.0%}"
                elif identity.training_error:
                    state = "training failed (Train to try again)"
                warn = f" · ⚠ {identity.warning_count} with warnings" if identity.warning_count else ""
                item = QListWidgetItem(f"{identity.name}\n{identity.photo_count} photos{warn} · {state}")
                if identity.training_error:  # shown until the next attempt
                    item.setToolTip(f"The last training failed: {identity.training_error}")
                item.setData(Qt.ItemDataRole.UserRole, identity.id)
                item.setIcon(qta.icon("mdi6.account"))
                self.list.addItem(item)
                photos = self.project.identity_photos(identity.id)
                if photos:
                    thumbs.append((identity.id, str(self.project.path_of(photos[0].path))))
        self.list.blockSignals(False)
        if keep:
            self.select(keep)
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)
        if thumbs:
            self._thumb_worker = run_in_background(load_thumbnails, thumbs, 112, on_done=self._on_thumbs_loaded)

    def _on_thumbs_loaded(self, thumbs) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            for key, image in thumbs:
                if key == item.data(Qt.ItemDataRole.UserRole) and not image.isNull():
                    item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _on_list_current_changed(self, current, previous) -> None:
        self.identity_changed.emit(self.current_id())

    def _on_new_clicked(self) -> None:
        if self.project is None:
            return
        name, ok = QInputDialog.getText(self, "New identity", "Client name:")
        if ok and name.strip():
            from ..project import ProjectError

            try:
                identity_id = self.project.create_identity(name)
            except ProjectError as exc:
                QMessageBox.warning(self, "New identity", str(exc))
                return
            self.refresh()
            self.select(identity_id)

    def _on_add_clicked(self) -> None:
        if not self.current_id():
            return
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos of the client", "", IMAGE_FILTER)
        if files:
            self.import_requested.emit(self.current_id(), files)

    def _on_delete_clicked(self) -> None:
        identity_id = self.current_id()
        if not identity_id or self.project is None:
            return
        name = self.project.identity(identity_id).name
        answer = QMessageBox.question(self, "Delete identity",
                                      f"Delete '{name}' and its photos? Its outputs stay in History.")
        if answer == QMessageBox.StandardButton.Yes:
            self.project.delete_identity(identity_id)
            self.refresh()
