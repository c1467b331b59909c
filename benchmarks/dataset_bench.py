"""Issue 24 figures: a 1M-row Parquet file loaded as the experiment's dataset (provider local:
pyarrow.dataset, ids, content fingerprint, a pandas DataFrame) beside a bare
``pyarrow.parquet.read_table``, and beside ``read_table().to_pandas()`` (the same product as
ours); time alternating sides, peak memory each in a fresh process (Arrow's pool and the traced
heap, RSS beside)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Row, Timing, paired

ROWS = 1_000_000


def write_table(path: Path, rows: int = ROWS, with_ids: bool = False) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns = {"id": pa.array([f"ex{i:07d}" for i in range(rows)])} if with_ids else {}
    table = pa.table(
        {
            **columns,
            "input": pa.array([f"What is {i} plus {i % 97}?" for i in range(rows)]),
            "reference": pa.array([str(i + i % 97) for i in range(rows)]),
            "score": rng.normal(size=rows),
            "label": rng.integers(0, 10, rows),
        }
    )
    pq.write_table(table, path)


def _ref(path: Path) -> object:
    from crucible_dagster.experiment.ir import DatasetRef

    return DatasetRef.model_validate(
        {"name": "big", "provider": "local", "options": {"path": str(path)}}
    )


#: one load's peak memory in a fresh process, after imports and a warm-up load, the same way on
#: every side: the Arrow memory pool's high-water mark above what it held before (Arrow's
#: buffers: tracemalloc cannot see them) plus tracemalloc's peak (numpy, pandas and Python
#: objects, which the pool cannot see); an upper bound of the two together. RSS, sampled every
#: 0.5 ms, is printed beside: the allocators (mimalloc, glibc) keep freed pages, so it counts
#: what was freed and reused as well (read_table alone showed 2.7x to 6.7x the table by RSS).
PEAK = """
import resource, sys, threading, time, tracemalloc
import pyarrow as pa, pyarrow.parquet as pq
from crucible_dagster.datasets import load_dataset
from crucible_dagster.experiment.ir import DatasetRef
side, path, small = sys.argv[1], sys.argv[2], sys.argv[3]
ref = lambda p: DatasetRef.model_validate({"name": "big", "provider": "local", "options": {"path": p}})
load_dataset(ref(small), 0); pq.read_table(small).to_pandas()
page = resource.getpagesize()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
high, done = [0], threading.Event()
def sample():
    while not done.is_set():
        high[0] = max(high[0], rss()); time.sleep(0.0005)
watcher = threading.Thread(target=sample); watcher.start()
before, pool = rss(), pa.total_allocated_bytes()
tracemalloc.start()
if side == "ours":
    kept = load_dataset(ref(path), 0).examples
elif side == "read_table":
    kept = pq.read_table(path)
else:
    kept = pq.read_table(path).to_pandas()
heap = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
arrow = pa.default_memory_pool().max_memory() - pool
done.set(); watcher.join()
print(arrow + heap, max(high[0], rss()) - before, pq.read_table(path).nbytes)
"""


def _peak(side: str, path: Path, small: Path) -> tuple[float, float, float]:
    """(peak bytes: Arrow pool + traced heap, peak RSS growth, the table's nbytes)."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, side, str(path), str(small)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def _rows_for(path: Path, small: Path, label: str) -> list[Row]:
    import pyarrow.parquet as pq

    from crucible_dagster.datasets import load_dataset

    ref = _ref(path)

    def ours() -> None:
        load_dataset(ref, 0)  # type: ignore[arg-type]

    def bare() -> None:
        pq.read_table(path)

    def bare_pandas() -> None:
        pq.read_table(path).to_pandas()

    mine, base, busy = paired(ours, bare, repeats=9)
    mine2, base2, busy2 = paired(ours, bare_pandas, repeats=9)
    peaks = {side: _peak(side, path, small) for side in ("ours", "read_table", "to_pandas")}
    size = peaks["ours"][2]
    name = f"load 1M rows, {label} ({size / 2**20:.0f} MiB)"
    rss = ", ".join(f"{side} {peaks[side][1] / size:.2f}x" for side in peaks)
    return [
        Row(name, mine, base, "pyarrow.parquet.read_table (Arrow)", "<=1.1x", busy),
        Row(name, mine2, base2, "read_table().to_pandas() (as ours)", "<=1.1x", busy2),
        Row(
            f"peak memory / table size, {label}",
            Timing.fixed(peaks["ours"][0] / size),
            Timing.fixed(peaks["read_table"][0] / size),
            f"read_table (Arrow pool + traced heap; to_pandas {peaks['to_pandas'][0] / size:.2f}x;"
            f" peak RSS growth: {rss})",
            "<=1.5x",
            unit="x",
        ),
    ]


def dataset_rows() -> list[Row]:
    """Ours is pyarrow.dataset's read + the ids (a string id column is checked unique: a sort)
    + the content fingerprint + the DataFrame."""
    with tempfile.TemporaryDirectory() as folder:
        plain, with_ids = Path(folder) / "plain.parquet", Path(folder) / "ids.parquet"
        small = Path(folder) / "small.parquet"
        write_table(plain)
        write_table(with_ids, with_ids=True)
        write_table(small, 100)
        return [
            *_rows_for(plain, small, "row-number ids"),
            *_rows_for(with_ids, small, "a string id column"),
        ]
