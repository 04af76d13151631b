"""`medlens batch`: the same classifier over a whole corpus, written as Parquet parts.

    inputs.py      INPUTs (folders, files, PDFs, .txt/.csv/.parquet lists) -> sources
    work.py        per-source loading (read/fetch, decode, PDF expansion) and classification: the
                   one code path both engines run
    output.py      row schema, atomic Parquet parts, resume, summary.json
    local.py       the in-process engine (no Ray)
    ray_engine.py  the Ray Data engine (imports Ray; needs `pip install medlens[scale]`)

Nothing here is a scheduler of its own: the local engine is a loop, the Ray engine hands the
stages to Ray Data's streaming executor.
"""
