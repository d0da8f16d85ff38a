"""Stand-in for sd-scripts' networks/sdxl_merge_lora.py: merge_lora.py's stand-in with the SDXL script's surface."""

import os

os.environ["FAKE_MERGE_SCRIPT"] = "sdxl_merge_lora"

import merge_lora  # noqa: E402

merge_lora.main()
