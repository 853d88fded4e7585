// bench/timers/node.js MODE N: the same workloads with async functions
// and promises (setTimeout per sleeper; Promise.all to join).
const [mode, nStr] = process.argv.slice(2);
const n = Number(nStr);
const t0 = process.hrtime.bigint();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main() {
  if (mode === "sleep") {
    const tasks = [];
    for (let i = 0; i < n; i++) tasks.push((async () => { await sleep(Math.random() * 100); })());
    await Promise.all(tasks);
  } else {
    const f = async (i) => i;
    const tasks = [];
    for (let i = 0; i < n; i++) tasks.push(f(i));
    const r = await Promise.all(tasks);
    if (r[n - 1] !== n - 1) throw new Error("bad");
  }
  console.log((Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1));
}
main();
