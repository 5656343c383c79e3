"""Provenance of figures: sidecar JSON, embedded IDs, lineage audit, BIDS dataset description."""

from ..manifest import find_manifest
from .audit import AuditReport, audit, embedded_provenance
from .sidecar import (
    build_sidecar,
    provenance_id,
    save_figure,
    sidecar_path_for,
    write_dataset_description,
)

__all__ = [
    "AuditReport",
    "audit",
    "build_sidecar",
    "embedded_provenance",
    "find_manifest",
    "provenance_id",
    "save_figure",
    "sidecar_path_for",
    "write_dataset_description",
]
