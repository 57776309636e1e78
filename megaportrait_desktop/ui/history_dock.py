"""History dock: outputs with thumbnails, identity verdict, score and rating; filter, sort, and the actions on them."""

from __future__ import annotations

import datetime as dt

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QFlowLayout

from ..core.identity_report import VERDICT_LABELS, IdentityReport
from ..project import Output, OutputQuery, Project, list_outputs
from .empty_hints import HISTORY_HINT, set_empty_hint
from .shortcuts import widget_shortcut
from .thumbnails import load_thumbnails, set_icons
from .widgets import current_item_id, select_item_id
from .workers import run_in_background

#: Item data role holding the output's verdict code (``None`` without a report).
VERDICT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item data role holding the :class:`Output` the item shows (to re-describe it for the grid without a query).
OUTPUT_ROLE = Qt.ItemDataRole.UserRole + 2
#: Outputs fetched at a time; scrolling to the end of the list fetches the next page.
PAGE_SIZE = 100
#: Text colours by verdict (the contact sheet's badge colours, a little darker for text).
VERDICT_COLOURS = {"client": "#1f7a35", "mix": "#a86d00", "reference": "#b0202c"}


def _report_tip(report: dict | None) -> str:
    if not report:
        return "No identity report (recorded before reports, or no recogniser was installed)."
    parsed = IdentityReport.from_json(report)
    return "\n".join([parsed.summary(), *(f"⚠ {w}" for w in parsed.warnings)])


#: Thumbnail sizes (pixels) the size slider allows, and the default.
THUMB_SIZES = (48, 240)
THUMB_DEFAULT = 112


class HistoryDock(QDockWidget):
    output_selected = Signal(int)
    recall_requested = Signal(int)
    compare_requested = Signal(int)
    compare_pair_requested = Signal(int, int)  # two outputs side by side
    export_requested = Signal(int)
    delete_requested = Signal(int)
    undo_delete_requested = Signal()
    rerun_final_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("History", parent)
        self.setObjectName("historyDock")
        self.project: Project | None = None
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        set_empty_hint(self.list, HISTORY_HINT)
        #: Outputs hidden from the list (deleted, while the deletion can be undone).
        self.hidden_ids: tuple[int, ...] = ()
        self.grid = QToolButton()
        self.grid.setObjectName("historyGrid")
        self.grid.setIcon(qta.icon("mdi6.view-grid"))
        self.grid.setCheckable(True)
        self.grid.setToolTip("Grid view: thumbnails side by side (off: a list with the details)")
        self.thumb_size = QSlider(Qt.Orientation.Horizontal)
        self.thumb_size.setObjectName("historyThumbSize")
        self.thumb_size.setRange(*THUMB_SIZES)
        self.thumb_size.setValue(THUMB_DEFAULT)
        self.thumb_size.setFixedWidth(90)
        self.thumb_size.setToolTip("Thumbnail size")
        self.sort = QComboBox()
        for label, key in (("Newest", "newest"), ("Identity score", "score"), ("Rating", "rating"),
                           ("Oldest", "oldest")):
            self.sort.addItem(label, key)
        self.verdict_filter = QComboBox()
        self.verdict_filter.setObjectName("historyVerdict")
        self.verdict_filter.setToolTip("Show only outputs whose face reads as the client, a mix, or still the "
                                       "reference person (by the identity recogniser)")
        for label, key in (("Any verdict", None), ("The client", "client"), ("A mix", "mix"),
                           ("Still the reference person", "reference"), ("No identity report", "none")):
            self.verdict_filter.addItem(label, key)
        self.identity_filter = QComboBox()
        self.batch_filter = QComboBox()
        self.batch_filter.setObjectName("historyBatch")
        self.batch_filter.setToolTip("Show one batch's outputs (a shoot run as a batch)")
        self.batch_filter.addItem("All runs", None)
        self.quality_filter = QComboBox()
        self.quality_filter.setObjectName("historyQuality")
        for label, key in (("Drafts and finals", None), ("Finals", "final"), ("Drafts", "draft")):
            self.quality_filter.addItem(label, key)
        self.tag_filter = QLineEdit()
        self.tag_filter.setPlaceholderText("tag")
        self.min_rating = QSpinBox()
        self.min_rating.setRange(0, 5)
        self.min_rating.setPrefix("★ ≥ ")
        self.rating = QSpinBox()
        self.rating.setRange(0, 5)
        self.rating.setPrefix("★ ")
        self.rating.setToolTip("Rate the selected output")
        self.favourites_only = QCheckBox("♥ only")
        self.favourites_only.setToolTip("Show only the outputs marked as favourites")
        self.favourite = QPushButton(qta.icon("mdi6.heart-outline"), "")
        self.favourite.setCheckable(True)
        self.favourite.setToolTip("Mark the selected output as a favourite")
        self.tags = QLineEdit()
        self.tags.setObjectName("historyTags")
        self.tags.setPlaceholderText("tags, comma separated")
        self.tags.setToolTip("The selected output's tags (Enter saves them); filter by one with the tag box above")
        self.count = QLabel("")
        # Filters and actions wrap onto a second row where the dock is narrow (1280×720), rather than widening
        # the window past the screen.
        filters = QFlowLayout()
        for w in (self.sort, self.verdict_filter, self.identity_filter, self.batch_filter, self.quality_filter,
                  self.tag_filter, self.min_rating, self.favourites_only, self.count):
            filters.addWidget(w)
        filters.addWidget(self.grid)
        filters.addWidget(self.thumb_size)
        actions = QFlowLayout()
        self.buttons = {}
        for key, icon, text, tip in (
                ("recall", "mdi6.history", "Recall settings", "Make the output's settings, models and mask the "
                                                              "current ones"),
                ("compare", "mdi6.compare", "Compare", "One output: before/after against the reference; two "
                                                       "(Ctrl+click the second): side by side"),
                ("export", "mdi6.export", "Export…", "Export the selected outputs with a preset (JPEG for delivery, "
                                                     "web, print…)"),
                ("delete", "mdi6.delete", "Delete", "Delete the selected outputs (Delete; Undo delete brings them "
                                                    "back)"),
                ("undo_delete", "mdi6.delete-restore", "Undo delete", "Bring the outputs deleted last back"),
                ("final", "mdi6.image-filter-hdr", "Run as Final", "Run the selected draft again at Final quality, "
                                                                   "with the same settings")):
            button = QPushButton(qta.icon(icon), text)
            button.setToolTip(tip)
            self.buttons[key] = button
            actions.addWidget(button)
        self.buttons["undo_delete"].hide()
        actions.addWidget(self.rating)
        actions.addWidget(self.favourite)
        self.tags.setMinimumWidth(180)
        actions.addWidget(self.tags)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(filters)
        layout.addWidget(self.list)
        layout.addLayout(actions)
        self.setWidget(body)
        for signal in (self.sort.currentIndexChanged, self.verdict_filter.currentIndexChanged,
                       self.identity_filter.currentIndexChanged, self.min_rating.valueChanged,
                       self.tag_filter.editingFinished, self.favourites_only.toggled,
                       self.batch_filter.currentIndexChanged, self.quality_filter.currentIndexChanged):
            signal.connect(self.refresh)
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        self.list.verticalScrollBar().valueChanged.connect(self._on_list_scrolled)
        self.rating.valueChanged.connect(self._on_rating_value_changed)
        self.favourite.toggled.connect(self._on_favourite_toggled)
        self.tags.editingFinished.connect(self._on_tags_editing_finished)
        self._page = 0
        self._total = 0
        self.buttons["recall"].clicked.connect(lambda: self._emit(self.recall_requested))
        self.buttons["compare"].clicked.connect(self._on_compare_clicked)
        self.buttons["export"].clicked.connect(lambda: self._emit(self.export_requested))
        self.buttons["delete"].clicked.connect(lambda: self._emit(self.delete_requested))
        self.buttons["undo_delete"].clicked.connect(self.undo_delete_requested)
        self.delete_shortcut = widget_shortcut(self.list, "Delete", lambda: self._emit(self.delete_requested))
        self.grid.toggled.connect(self._apply_view)
        self.thumb_size.valueChanged.connect(self._apply_view)
        self.buttons["final"].clicked.connect(lambda: self._emit(self.rerun_final_requested))
        self._thumb_worker = None
        self._apply_view()

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def current_id(self) -> int:
        return current_item_id(self.list)

    def select(self, output_id: int) -> None:
        """Make ``output_id`` the current item, quietly (the caller shows it)."""
        self.list.blockSignals(True)
        select_item_id(self.list, output_id)
        self.list.blockSignals(False)

    def selected_ids(self) -> list[int]:
        """The selected outputs, the current one first (what Export and Delete act on)."""
        ids = [int(item.data(Qt.ItemDataRole.UserRole)) for item in self.list.selectedItems()]
        current = self.current_id()
        if current and current in ids:
            ids.remove(current)
            ids.insert(0, current)
        return ids or ([current] if current else [])

    def _apply_view(self, *_) -> None:
        """List or grid, at the chosen thumbnail size (the item texts shorten in the grid)."""
        size = self.thumb_size.value()
        grid = self.grid.isChecked()
        self.list.setViewMode(QListView.ViewMode.IconMode if grid else QListView.ViewMode.ListMode)
        self.list.setIconSize(QSize(size, size))
        self.list.setGridSize(QSize(size + 24, size + 44) if grid else QSize())
        self.list.setWordWrap(grid)
        self.list.setSpacing(0 if grid else 2)
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(OUTPUT_ROLE) is not None:
                _describe(item, item.data(OUTPUT_ROLE), grid)

    def _on_compare_clicked(self) -> None:
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.compare_pair_requested.emit(ids[0], ids[1])
        elif ids:
            self.compare_requested.emit(ids[0])

    def refresh(self) -> None:
        """The first page of outputs for the current filters (the rest load as the list scrolls)."""
        self._refresh_filters()
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        self._page, self._total = 0, 0
        self._load_page()

    def _refresh_filters(self) -> None:
        """Identities and batches made since the project opened appear in the filters (the choice is kept)."""
        from ..project.batches import batches

        for combo, first, items in (
                (self.identity_filter, "All identities",
                 [(i.name, i.id) for i in self.project.identities()] if self.project else []),
                (self.batch_filter, "All runs",
                 [(f"Batch #{b.id} {b.name}", b.id) for b in batches(self.project)] if self.project else [])):
            keep = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(first, None)
            for text, data in items:
                combo.addItem(text, data)
            combo.setCurrentIndex(max(0, combo.findData(keep)))
            combo.blockSignals(False)

    def _query(self, page: int) -> OutputQuery:
        return OutputQuery(sort=self.sort.currentData(), identity_id=self.identity_filter.currentData(),
                           tag=self.tag_filter.text().strip() or None, verdict=self.verdict_filter.currentData(),
                           min_rating=self.min_rating.value() or None,
                           favourite=True if self.favourites_only.isChecked() else None,
                           batch_id=self.batch_filter.currentData(), quality=self.quality_filter.currentData(),
                           exclude_ids=self.hidden_ids,
                           page=page, page_size=PAGE_SIZE)

    def _load_page(self) -> None:
        if self.project is None:
            self.count.setText("")
            return
        page = list_outputs(self.project, self._query(self._page))
        self._total = page.total
        thumbs = []
        self.list.blockSignals(True)
        for out in page.items:
            item = QListWidgetItem(qta.icon("mdi6.image"), "")
            item.setData(Qt.ItemDataRole.UserRole, out.id)
            _describe(item, out, self.grid.isChecked())
            self.list.addItem(item)
            if out.thumb_path:
                thumbs.append((out.id, str(self.project.path_of(out.thumb_path))))
        self.list.blockSignals(False)
        self.count.setText(f"{self.list.count()} of {self._total}")
        if thumbs:
            self._thumb_worker = run_in_background(load_thumbnails, thumbs, THUMB_SIZES[1], True,
                                                   on_done=self._on_thumbs_loaded)

    def _on_list_scrolled(self, value: int) -> None:
        bar = self.list.verticalScrollBar()
        if value >= bar.maximum() - 2 and self.list.count() < self._total:
            self._page += 1
            self._load_page()

    def update_item(self, output_id: int) -> None:
        """Show an output's new rating, favourite flag or tags on its item at once (no re-sort needed)."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == output_id:
                _describe(item, self.project.output(output_id), self.grid.isChecked())

    def _on_thumbs_loaded(self, thumbs) -> None:
        set_icons(self.list, thumbs)

    def _on_list_current_changed(self, current, previous) -> None:
        output_id = self.current_id()
        if output_id and self.project is not None:
            out = self.project.output(output_id)
            for widget, show in ((self.rating, lambda: self.rating.setValue(out.rating)),
                                 (self.favourite, lambda: self.favourite.setChecked(out.favourite)),
                                 (self.tags, lambda: self.tags.setText(", ".join(out.tags)))):
                widget.blockSignals(True)
                show()
                widget.blockSignals(False)
            self.output_selected.emit(output_id)

    def _on_rating_value_changed(self, value: int) -> None:
        output_id = self.current_id()
        if output_id and self.project is not None:
            self.project.set_rating(output_id, value)
            self.update_item(output_id)

    def _on_favourite_toggled(self, on: bool) -> None:
        output_id = self.current_id()
        if output_id and self.project is not None:
            self.project.set_favourite(output_id, on)
            self.update_item(output_id)

    def _on_tags_editing_finished(self) -> None:
        output_id = self.current_id()
        if not output_id or self.project is None:
            return
        wanted = {t.strip() for t in self.tags.text().split(",") if t.strip()}
        current = set(self.project.output(output_id).tags)
        for tag in current - wanted:
            self.project.remove_tag(output_id, tag)
        for tag in wanted - current:
            self.project.add_tag(output_id, tag)
        self.update_item(output_id)

    def _emit(self, signal) -> None:
        ids = self.selected_ids()  # the current output, or the first selected one
        if ids:
            signal.emit(ids[0])


def _describe(item: QListWidgetItem, out: Output, compact: bool = False) -> None:
    """An output's item text: names, verdict, score, rating, favourite, tags, engine and time (in the grid:
    number, client, stars and score only; the rest is in the tooltip)."""
    when = dt.datetime.fromtimestamp(out.created).strftime("%d %b %H:%M")
    score = "score n/a" if out.identity_score is None else f"score {out.identity_score:.3f}"
    verdict = VERDICT_LABELS.get(out.verdict, "no identity report")
    stars = "★" * out.rating or "unrated"
    heart = " ♥" if out.favourite else ""
    tags = f" · #{' #'.join(out.tags)}" if out.tags else ""
    batch = f" · batch #{out.batch_id}" if out.batch_id else ""
    draft = " · DRAFT" if out.request.get("diffusion", {}).get("quality") == "draft" else ""
    full = (f"#{out.id} {out.identity_name or '—'} → {out.reference_name or '—'}{heart}{batch}{draft}\n"
            f"{verdict} · {score} · {stars} · {out.engine} · {when}{tags}")
    short_score = "" if out.identity_score is None else f" · {out.identity_score:.2f}"
    item.setText(f"#{out.id} {out.identity_name or '—'}{heart}{draft}\n{'★' * out.rating or '☆'}{short_score}"
                 if compact else full)
    item.setData(VERDICT_ROLE, out.verdict)
    item.setData(OUTPUT_ROLE, out)
    if out.verdict in VERDICT_COLOURS:
        item.setForeground(QColor(VERDICT_COLOURS[out.verdict]))
    item.setToolTip((full + "\n\n" if compact else "") + _report_tip(out.identity_report))
