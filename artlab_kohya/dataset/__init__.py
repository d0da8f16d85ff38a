"""The images and captions: what sd-scripts will see in a folder (images.py, buckets.py, steps.py),
the checks (check.py, scan.py, report.py, cliptok.py), and the tools that change a dataset
(organize.py, prepare.py, caption_edit.py, caption_generate.py, which runs sd-scripts' captioners
through trainer/). May import trainer, models, spec."""

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
