"""Dataset checks: check.py (entry points, buckets, issues), scan.py (reading folders), report.py (output)."""

from .check import check_folder, check_spec_dataset
from .report import (
    KINDS,
    BucketRow,
    DatasetReport,
    FolderIssue,
    SubsetInput,
    SubsetReport,
    print_report,
    report_json,
)

__all__ = [
    "KINDS",
    "BucketRow",
    "DatasetReport",
    "FolderIssue",
    "SubsetInput",
    "SubsetReport",
    "check_folder",
    "check_spec_dataset",
    "print_report",
    "report_json",
]
