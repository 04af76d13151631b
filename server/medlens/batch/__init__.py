"""`medlens batch`: the same classifier over a whole corpus, written as a Parquet dataset folder.

    keys.py         which sources were seen, in 8 bytes a source (resume, de-duplication)
    fetching.py     downloads as a crawler: the server's Fetcher plus retries with backoff
    loading.py      sources -> image rows for one worker: ingest's loader (read/fetch once, sniff,
                    one extractor per container kind) with batch's retries; imports neither the
                    model nor the web layer
    classifying.py  image rows -> classified rows
    output.py       row schema, atomic Parquet parts, resume, _summary.json and _SUCCESS
    local.py        the in-process engine (no Ray)
    ray_engine.py   the Ray Data engine (imports Ray; needs `pip install medlens[scale]`)
    job.py          run_batch: inputs -> engine -> folder

INPUTs are expanded by `medlens.ingest.sources` (the same expansion `medlens classify` uses).
Nothing here is a scheduler of its own: the local engine is a loop beside one loader thread, the
Ray engine hands the stages to Ray Data's streaming executor.
"""
