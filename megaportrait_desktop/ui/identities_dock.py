"""Identities dock: the identity sets with a thumbnail, photo count, quality warnings and training state;
under them the selected identity's photos (:mod:`.identity_photos`). Photos dropped on an identity go
into it; dropped elsewhere they start a new one."""

from __future__ import annotations

from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..project import Project, ProjectError
from .drops import FileDrops
from .empty_hints import IDENTITIES_HINT, set_empty_hint
from .identity_photos import IdentityPhotos
from .shortcuts import widget_shortcut
from .thumbnails import load_thumbnails, set_icons
from .widgets import current_item_id, select_item_id
from .workers import run_in_background

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.tif *.tiff *.webp)"


class IdentitiesDock(QDockWidget):
    identity_changed = Signal(int)          # selected identity id (0 = none)
    import_requested = Signal(int, list)    # identity id, file paths
    train_requested = Signal(int)
    identities_changed = Signal(int)        # identity id: created, renamed, deleted, or photos removed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Identities", parent)
        self.setObjectName("identitiesDock")
        self.project: Project | None = None
        self.list = QListWidget()
        self.list.setIconSize(QSize(56, 56))
        self.list.setObjectName("identitiesList")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        set_empty_hint(self.list, IDENTITIES_HINT)
        self.photos = IdentityPhotos()
        new = QPushButton(qta.icon("mdi6.account-plus"), "New")
        new.setToolTip("A new identity: one client's photo set")
        add = QPushButton(qta.icon("mdi6.image-plus"), "Add photos…")
        add.setToolTip("Add photos of the client to the selected identity (or drop them on it)")
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
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.list)
        split.addWidget(self.photos)
        split.setSizes([120, 160])
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.drops = FileDrops(self.list)
        self.drops.dropped.connect(self._on_files_dropped)
        self.photos.import_requested.connect(self.import_requested)
        self.photos.photos_changed.connect(self._on_photos_changed)
        self.list.customContextMenuRequested.connect(self._on_context_menu)
        self.list.itemDoubleClicked.connect(lambda _: self.rename_current())
        self.rename_shortcut = widget_shortcut(self.list, "F2", self.rename_current)
        self.remove_shortcut = widget_shortcut(self.photos.list, "Delete", lambda: self.photos.remove_selected())
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
            self._thumb_worker = run_in_background(load_thumbnails, thumbs, 112, True, on_done=self._on_thumbs_loaded)
        self.photos.show_identity(self.project, self.current_id())

    def show_training(self, identity_id: int, fraction: float) -> None:
        """A training's progress on its item only (a full refresh per step would query every identity)."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == identity_id:
                name, _, rest = item.text().partition("\n")
                photos = rest.split(" · ")[0]
                item.setText(f"{name}\n{photos} · training {fraction:.0%}")
                return

    def _on_thumbs_loaded(self, thumbs) -> None:
        set_icons(self.list, thumbs)

    def _on_list_current_changed(self, current, previous) -> None:
        self.photos.show_identity(self.project, self.current_id())
        self.identity_changed.emit(self.current_id())

    def _on_new_clicked(self) -> None:
        self.new_identity()

    def new_identity(self, suggestion: str = "", why: str = "") -> int:
        """Ask for the client's name and create the identity (selected); 0 when cancelled or refused."""
        if self.project is None:
            return 0
        prompt = (f"{why}\n\n" if why else "") + "Client name:"
        name, ok = QInputDialog.getText(self, "New identity", prompt, text=suggestion)
        if not ok or not name.strip():
            return 0
        try:
            identity_id = self.project.create_identity(name)
        except ProjectError as exc:
            QMessageBox.warning(self, "New identity", str(exc))
            return 0
        self.refresh()
        self.select(identity_id)
        self.identities_changed.emit(identity_id)  # History's identity filter lists it at once
        return identity_id

    def rename_current(self) -> None:
        """Rename the selected identity (F2, double-click, or the context menu)."""
        identity_id = self.current_id()
        if not identity_id or self.project is None:
            return
        old = self.project.identity(identity_id).name
        name, ok = QInputDialog.getText(self, "Rename identity", "Client name:", text=old)
        if not ok or not name.strip() or name.strip() == old:
            return
        try:
            self.project.rename_identity(identity_id, name)
        except ProjectError as exc:
            QMessageBox.warning(self, "Rename identity", str(exc))
            return
        self.refresh()
        self.identities_changed.emit(identity_id)

    def _on_add_clicked(self) -> None:
        identity_id = self.current_id() or self.new_identity(
            why="Photos belong to an identity (one client). There is none selected: name a new one for them.")
        if not identity_id:
            return
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos of the client", "", IMAGE_FILTER)
        if files:
            self.import_requested.emit(identity_id, files)

    def _on_files_dropped(self, paths: list[str], point) -> None:
        """On an identity: into it. Elsewhere: a new identity, named after the photos' folder."""
        if self.project is None:
            return
        item = self.list.itemAt(point)
        if item is not None:
            identity_id = int(item.data(Qt.ItemDataRole.UserRole))
            self.select(identity_id)
        else:
            identity_id = self.new_identity(Path(paths[0]).parent.name,
                                            f"{len(paths)} photo(s) dropped: name the client they show.")
        if identity_id:
            self.import_requested.emit(identity_id, paths)

    def _on_photos_changed(self, identity_id: int) -> None:
        self.refresh()
        self.identities_changed.emit(identity_id)

    def _on_context_menu(self, point) -> None:
        if not self.list.itemAt(point):
            return
        menu = QMenu(self)
        menu.addAction(qta.icon("mdi6.rename"), "Rename… (F2)", self.rename_current)
        menu.addAction(qta.icon("mdi6.image-plus"), "Add photos…", self._on_add_clicked)
        menu.addAction(qta.icon("mdi6.check-decagram"), "Check set", self.photos.check_set)
        menu.addAction(qta.icon("mdi6.delete"), "Delete…", self._on_delete_clicked)
        menu.popup(self.list.viewport().mapToGlobal(point))

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
            self.identities_changed.emit(identity_id)
