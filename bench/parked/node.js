// bench/parked/node.js N: per-item memory of N async functions awaiting
// an hour-long timer ("<heap bytes> <rss bytes>"; run with --expose-gc).
const n = Number(process.argv[2] || 100000);
const keep = [];
const settle = () => new Promise((r) => setImmediate(r));
(async () => {
  await settle();
  global.gc(); global.gc();
  const m0 = process.memoryUsage();
  for (let i = 0; i < n; i++) {
    keep.push((async () => {
      await new Promise((r) => setTimeout(r, 3600 * 1000));
    })());
  }
  await settle();
  global.gc(); global.gc();
  const m1 = process.memoryUsage();
  console.log(`${Math.round((m1.heapUsed - m0.heapUsed) / n)} ` +
              `${Math.round((m1.rss - m0.rss) / n)}`);
  process.exit(0);
})();
