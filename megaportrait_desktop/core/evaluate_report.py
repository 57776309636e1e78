"""What ``evaluate`` writes: ``table.md``, ``results.json``, ``runs.csv`` and ``contact_sheet.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .atomic_write import write_bytes_atomically
from .contact_sheet import Tile, save_contact_sheet
from .evaluate import CLIENT_PHOTO, PASTE, REFERENCE, Evaluation, Row, Summary

#: Rows of the contact sheet at most (one per identity × held-out × reference); the rest are in the tables.
SHEET_ROWS = 40
CSV_FIELDS = ("identity", "held_out", "reference", "method", "source", "d_client", "d_ref", "verdict", "success",
              "transfer", "seam", "outside", "seconds", "light", "colour", "warnings")


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, tile_size: int = 192) -> dict[str, Path]:
    """Write every file into ``out_dir`` (created); returns them by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "table.md", "results": out / "results.json", "runs": out / "runs.csv",
             "contact_sheet": out / "contact_sheet.png"}
    write_bytes_atomically(files["table"], table_markdown(evaluation).encode("utf-8"), durable=False)
    write_bytes_atomically(files["results"], json.dumps(results_json(evaluation), indent=1).encode("utf-8"),
                           durable=False)
    with files["runs"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in evaluation.rows:
            data = row.to_json()
            data["warnings"] = " ".join(row.warnings)
            writer.writerow({k: _csv(data[k]) for k in CSV_FIELDS})
    if evaluation.images:
        _sheet(evaluation, files["contact_sheet"], tile_size)
    else:
        files.pop("contact_sheet")
    return files


def results_json(evaluation: Evaluation) -> dict:
    return {"backend": evaluation.backend, "threshold": evaluation.threshold, "methods": list(evaluation.methods),
            "engine_method": evaluation.engine_method,
            "sweeps": [{"field": s.field, "values": list(s.values)} for s in evaluation.sweeps],
            "identities": evaluation.identities, "references": evaluation.references,
            "set_warnings": evaluation.set_warnings, "skipped": evaluation.skipped,
            "summary": [s.to_json() for s in evaluation.summaries], "runs": [r.to_json() for r in evaluation.rows]}


def table_markdown(evaluation: Evaluation) -> str:
    """The summary table (methods and baselines), the sweeps, and the identity-set warnings."""
    t = evaluation.threshold
    held = [r for r in evaluation.rows if r.held_out and r.method == REFERENCE]
    lines = [
        "# Identity evaluation", "",
        f"Recogniser `{evaluation.backend}`: Euclidean distance of face descriptors, same person below {t:g}. "
        f"{len(evaluation.identities)} identities × {len(evaluation.references)} references, "
        f"{len(held)} runs per method with a held-out client photo (leave-one-out).", "",
        "| method | distance to client (held-out) | distance to reference person | success (client, not reference) "
        "| transfer | seam edge step | pixels changed outside the region | light kept | colour shift | seconds | n |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for summary in evaluation.summaries:
        if summary.method in {evaluation.engine_method, REFERENCE, PASTE, CLIENT_PHOTO}:
            lines.append(_summary_row(summary, bold=summary.method == evaluation.engine_method))
    lines += ["", "success: distance to the held-out client photo below the threshold and to the reference person "
                  "at or above it. transfer: (D_ref − d) / (D_ref − D_own), 0 = as far from the client as the "
                  "untouched reference, 1 = as close as the client's own (chosen) photo. seam: mean step across "
                  "the edge of the changed region less the reference's own step there, 8-bit levels. light kept: "
                  "correlation of the output's light map with the reference's over the skin both faces show "
                  "(CIE L*, low-passed at 0.35 × the interocular distance; 1 = the same light). colour shift: ΔE "
                  "between their mean skin a*b*.", ""]
    if evaluation.sweeps:
        base = next(s for s in evaluation.summaries if s.method == evaluation.engine_method)
        lines += ["## Sweeps", "", "One setting at a time, the others at the request's values; Δ is against "
                  f"`{evaluation.engine_method}` at those values.", "",
                  "| setting | distance to client | Δ | distance to reference | success | transfer | seam | light kept "
                  "| n |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for sweep in evaluation.sweeps:
            for value in sweep.values:
                name = f"{evaluation.engine_method} {sweep.label(value)}"
                s = next(x for x in evaluation.summaries if x.method == name)
                lines.append(f"| {sweep.label(value)} | {s.d_client:.3f} | {s.d_client - base.d_client:+.3f} | "
                             f"{s.d_ref:.3f} | {s.success:.0%} | {_num(s.transfer, 2)} | {_num(s.seam, 1)} | "
                             f"{_num(s.light, 2)} | {s.n} |")
        lines.append("")
    lines += ["## Identity sets", ""]
    for person, photos in evaluation.identities.items():
        lines.append(f"- **{person}** ({len(photos)} photo{'s' if len(photos) != 1 else ''}: {', '.join(photos)})")
        for message in evaluation.set_warnings.get(person, []):
            lines.append(f"  - warning: {message}")
    mismatched = _by_warning(evaluation, "expression_mismatch")
    if mismatched:
        lines += ["", "Pairs where no photo of the set matches the reference's expression (mouth open or closed, "
                      "smiling or not): "
                      f"{mismatched[0]} of {mismatched[1]}, success {_pct(mismatched[2])} there against "
                      f"{_pct(mismatched[3])} elsewhere ({evaluation.engine_method})."]
    if evaluation.skipped:
        lines += ["", "Skipped: " + "; ".join(evaluation.skipped)]
    return "\n".join(lines) + "\n"


def _summary_row(s: Summary, bold: bool) -> str:
    name = f"**{s.method}**" if bold else s.method
    outside = "–" if s.outside is None else f"{s.outside}"
    seconds = "–" if s.seconds is None else f"{s.seconds:.2f}"
    return (f"| {name} | {s.d_client:.3f} | {s.d_ref:.3f} | {s.success:.0%} | {_num(s.transfer, 2)} | "
            f"{_num(s.seam, 1, ' levels')} | {outside} | {_num(s.light, 2)} | {_num(s.colour, 1)} | {seconds} | "
            f"{s.n} |")


def _by_warning(evaluation: Evaluation, code: str) -> tuple[int, int, float | None, float | None] | None:
    rows = [r for r in evaluation.rows if r.method == evaluation.engine_method and r.held_out]
    flagged = [r for r in rows if code in r.warnings]
    if not flagged:
        return None
    others = [r for r in rows if code not in r.warnings]
    rate = lambda rs: sum(r.success for r in rs) / len(rs) if rs else None  # noqa: E731
    return len(flagged), len(rows), rate(flagged), rate(others)


def _sheet(evaluation: Evaluation, path: Path, tile_size: int) -> None:
    methods = list(evaluation.methods)
    by_key: dict[tuple[str, str, str], dict[str, Row]] = {}
    for row in evaluation.rows:
        by_key.setdefault((row.identity, row.held_out, row.reference), {})[row.method] = row
    tiles, labels = [], []
    for key, images in list(evaluation.images.items())[:SHEET_ROWS]:
        identity, held_out, reference = key
        labels.append(f"{identity}" + (f" (held out {held_out})" if held_out else "") + f"\n→ {reference}")
        for method in methods:
            row = by_key[key].get(method)
            image = images.get(method)
            if row is None or image is None:
                continue
            lines = (f"client {row.d_client:.2f} · ref {row.d_ref:.2f}",
                     "" if row.seam is None else f"seam {row.seam:.1f} · {row.seconds or 0:.1f} s")
            tiles.append(Tile(image, method, lines, row.verdict))
    title = (f"{evaluation.engine_method} against baselines: distances ({evaluation.backend}, same person below "
             f"{evaluation.threshold:g}) to the held-out client photo and to the reference person")
    save_contact_sheet(path, tiles, columns=len(methods), tile_size=tile_size, title=title,
                       row_labels=[label.split("\n")[0] for label in labels])


def _num(value: float | None, digits: int, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _csv(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return value
