// files_node.mjs: Node.js fs.promises side of bench/files.sh.
//   node files_node.mjs read PATH | small DIR N INFLIGHT
import { open } from "node:fs/promises";
const [mode, a, b, c] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
let total = 0;
if (mode === "read") {
  const fh = await open(a, "r");
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, 65536, null);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  await fh.close();
} else {
  const n = Number(b), inflight = Number(c);
  let next = 0;
  const worker = async () => {
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
      const i = ++next;
      if (i > n) return;
      const fh = await open(`${a}/f${i}`, "r");
      const { bytesRead } = await fh.read(buf, 0, 65536, 0);
      total += bytesRead;
      await fh.close();
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
console.log(`${ms.toFixed(1)} ${total}`);
