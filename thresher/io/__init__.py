"""Readers and writers for conversation rows.

``read_table(path)`` reads any supported input into a validated row table; ``write_table(df,
path)`` writes Parquet (canonical), JSONL/JSON or a Hugging Face dataset folder, atomically.
"""

from thresher.io.atomic import atomic_path, write_text_atomic
from thresher.io.readers import SHAPES, ReadResult, read_rows, read_table, read_tables
from thresher.io.writers import write_rejects, write_table

__all__ = [
    "SHAPES",
    "ReadResult",
    "atomic_path",
    "read_rows",
    "read_table",
    "read_tables",
    "write_rejects",
    "write_table",
    "write_text_atomic",
]
