// Optional peer check (not built, not run by CI): per-image predictions of
// ONNX Runtime on the CIFAR-10 test split, to compare with
// `qpipe eval --predictions --json OUT` image by image.
//
// Set-up (downloads onnxruntime-node from npm, outside the repository; the
// package ships its CPU binaries, the install script's extra download is
// skipped):
//   cd /tmp && ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node
// Run from the repository root:
//   ORT_NODE_PATH=/tmp/node_modules/onnxruntime-node \
//     node bench/peer/ort_predictions.mjs ../shared/models/resnet8_int8_ort_reference.onnx \
//     ../shared/data/cifar-10-batches-bin [--opt disabled|basic|extended|all] [--batch 500] > ort.json
// Output (stdout, one JSON object): backend, opt, model, correct, total,
// predictions[] (argmax per image, first index wins ties) and scores[][].
//
// --opt disabled executes every QuantizeLinear/DequantizeLinear as the spec
// defines (qpipe's reference semantics); extended/all fuse QDQ groups into
// ORT's integer kernels. Input: NHWC float32 raw pixels 0..255, as qpipe feeds.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require(process.env.ORT_NODE_PATH || 'onnxruntime-node');

const args = process.argv.slice(2);
if (args.length < 2) {
  console.error('usage: node ort_predictions.mjs MODEL CIFAR_DIR [--opt LEVEL] [--batch B] [--threads T]');
  process.exit(2);
}
const [model, dataDir] = args;
let opt = 'disabled', batch = 500, threads = 2;
for (let i = 2; i < args.length; ++i) {
  if (args[i] === '--opt') opt = args[++i];
  else if (args[i] === '--batch') batch = parseInt(args[++i], 10);
  else if (args[i] === '--threads') threads = parseInt(args[++i], 10);
  else { console.error(`unknown option ${args[i]}`); process.exit(2); }
}

const file = path.join(dataDir, 'test_batch.bin');
const buf = fs.readFileSync(file);
const rec = 3073;
if (buf.length % rec !== 0) { console.error(`${file}: size ${buf.length} is not a multiple of ${rec}`); process.exit(4); }
const n = buf.length / rec;

const sess = await ort.InferenceSession.create(model, { graphOptimizationLevel: opt, intraOpNumThreads: threads });
const inName = sess.inputNames[0], outName = sess.outputNames[0];
const predictions = [], scores = [];
let correct = 0;
for (let first = 0; first < n; first += batch) {
  const cnt = Math.min(batch, n - first);
  const x = new Float32Array(cnt * 32 * 32 * 3);
  for (let i = 0; i < cnt; ++i) {
    const off = (first + i) * rec;
    // record: label, 1024 R, 1024 G, 1024 B (row-major 32x32) -> NHWC
    for (let c = 0; c < 3; ++c)
      for (let p = 0; p < 1024; ++p) x[(i * 1024 + p) * 3 + c] = buf[off + 1 + c * 1024 + p];
  }
  const out = await sess.run({ [inName]: new ort.Tensor('float32', x, [cnt, 32, 32, 3]) });
  const y = out[outName].data, k = out[outName].dims[1];
  for (let i = 0; i < cnt; ++i) {
    let best = 0;
    for (let j = 1; j < k; ++j) if (y[i * k + j] > y[i * k + best]) best = j;
    predictions.push(best);
    scores.push(Array.from(y.slice(i * k, (i + 1) * k)));
    if (best === buf[(first + i) * rec]) ++correct;
  }
}
const version = (ort.env && ort.env.versions && ort.env.versions.common) || '';
console.log(JSON.stringify({ backend: `onnxruntime-node ${version}`.trim(), opt, model, correct, total: n, predictions, scores }));
