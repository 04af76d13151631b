/* MedLens content script, the request queue: which queued sources go to the service worker next,
 * in what batches, with a few requests in flight. Images on screen go first (nearest to the
 * viewport next), and first batches are small so the first answers come back soon. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.queue) return;

  const URL_CHUNK = 8; // URLs per request to the service worker
  const BYTES_CHUNK = 3; // inline images / frames per request
  const PARALLEL = 4; // requests in flight

  /** Queued entries, best first: smallest distance to the viewport (0 = on screen), then the order
   * they were found in. `distanceOf(entry)` is a number of px (Infinity when unknown). */
  function ordered(entries, distanceOf) {
    return entries
      .filter((e) => e.state === "queued")
      .map((e) => ({ e, d: distanceOf(e) }))
      .sort((a, b) => a.d - b.d || a.e.order - b.e.order)
      .map((x) => x.e);
  }

  /** The next batch from already ordered entries: all URLs or all bytes (one request each), led by
   * the best entry; at most `URL_CHUNK` / `BYTES_CHUNK`. */
  function nextBatch(orderedEntries, sizes = { urls: URL_CHUNK, bytes: BYTES_CHUNK }) {
    if (!orderedEntries.length) return [];
    const bytes = orderedEntries[0].bytes;
    const limit = bytes ? sizes.bytes : sizes.urls;
    return orderedEntries.filter((e) => e.bytes === bytes).slice(0, limit);
  }

  /** A queue over `allEntries()`; `send(batch)` classifies a batch (resolves when it is done).
   * `kick()` starts idle workers; `idle()` resolves once nothing is queued or in flight. */
  function create({ allEntries, distanceOf, send, parallel = PARALLEL }) {
    let running = 0;
    let waiters = [];

    function take() {
      const batch = nextBatch(ordered([...allEntries()], distanceOf));
      batch.forEach((e) => (e.state = "pending"));
      return batch;
    }

    async function worker() {
      running += 1;
      try {
        for (let b = take(); b.length; b = take()) await send(b);
      } finally {
        running -= 1;
        if (!running) {
          const w = waiters;
          waiters = [];
          w.forEach((resolve) => resolve());
        }
      }
    }

    function kick() {
      while (running < parallel && [...allEntries()].some((e) => e.state === "queued")) void worker();
    }

    function idle() {
      kick();
      return running ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve();
    }

    return { kick, idle };
  }

  ns.queue = Object.freeze({ URL_CHUNK, BYTES_CHUNK, PARALLEL, ordered, nextBatch, create });
})();
