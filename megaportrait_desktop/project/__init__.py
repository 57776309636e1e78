"""The project store (SQLite + content-addressed files). Never imports Qt."""

from .errors import ProjectError
from .history import OutputQuery, Page, list_outputs
from .imports import ImportResult, import_identity_photos, import_references
from .maintenance import VerifyReport, repair, verify
from .project import Identity, IdentityPhoto, Job, Mask, Output, Project, Reference

__all__ = [
    "Identity", "IdentityPhoto", "ImportResult", "Job", "Mask", "Output", "OutputQuery", "Page", "Project",
    "ProjectError", "Reference", "VerifyReport", "import_identity_photos", "import_references", "list_outputs",
    "repair", "verify",
]
