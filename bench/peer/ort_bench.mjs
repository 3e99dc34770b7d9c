// Optional peer benchmark (not built, not run by CI): whole-model throughput
// of ONNX Runtime (onnxruntime-node, CPU) next to `qpipe bench`, measured in
// the same run on the same models, inputs, batch sizes and thread counts, and
// printed as one Markdown table with the ratios qpipe/ORT.
//
// Set-up (outside the repository; the install script's extra download is
// skipped, the package ships its CPU binaries):
//   cd /somewhere && ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node
// and make it resolvable: NODE_PATH=/somewhere/node_modules, or
// ORT_NODE_PATH=/somewhere/node_modules/onnxruntime-node. Without node or the
// package the script prints how to install it and exits 0.
//
// Run from anywhere (paths default relative to the repository):
//   node bench/peer/ort_bench.mjs [--qpipe build/qpipe] [--model M[,M...]]
//        [--data DIR|none] [--batch 1,256] [--threads 1,2] [--seconds 1]
//        [--rounds N] [--no-disabled] [--skip-qpipe] [--json OUT]
// Defaults: the two ResNet8 models of <shared>/models (<shared> =
// $QPIPE_SHARED, else ../shared beside the repository), the first B CIFAR-10
// test images when <shared>/data/cifar-10-batches-bin exists (else synthetic
// 0..255 input, for both engines), qpipe from $QPIPE_BIN or build/qpipe.
//
// What is compared (same semantics on both sides):
//   FP32 model   qpipe reference    vs ORT graphOptimizationLevel 'all'
//   QDQ model    qpipe reference    vs ORT 'disabled' (every Q/DQ as the spec
//                                      defines: reference semantics)
//                qpipe ort-avx2     vs ORT 'all' (fused integer kernels)
//                qpipe exact        vs ORT 'all'
// Every row also shows the ratio against ORT 'all' (ORT's fastest setting).
// ORT sessions: intraOpNumThreads = threads, interOpNumThreads = 1,
// sequential execution. Timing as qpipe bench: one warm-up run, then runs
// until --seconds have passed (at least 3), median ms per batch. --rounds N
// alternates the two engines N times (ORT, qpipe, ORT, qpipe, ...) and keeps
// each configuration's best round, so a neighbour's burst of load on a shared
// machine does not bias the ratio towards one engine.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const INSTALL_HINT =
  'ort_bench: onnxruntime-node is not installed; to run the peer benchmark: ' +
  '`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node` (outside the repository), then set ' +
  'NODE_PATH to that node_modules folder';

const require = createRequire(import.meta.url);
let ort;
try {
  ort = require(process.env.ORT_NODE_PATH || 'onnxruntime-node');
} catch (e) {
  console.log(INSTALL_HINT);
  process.exit(0);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const shared = process.env.QPIPE_SHARED ? path.resolve(process.env.QPIPE_SHARED) : path.resolve(repo, '..', 'shared');

function usage(msg) {
  if (msg) console.error(`ort_bench: ${msg}`);
  console.error('usage: node bench/peer/ort_bench.mjs [--qpipe BIN] [--model M[,M...]] [--data DIR|none] ' +
                '[--batch 1,256] [--threads 1,2] [--seconds S] [--rounds N] [--no-disabled] [--skip-qpipe] [--json OUT]');
  process.exit(2);
}

const intList = (name, text, min) => {
  const out = text.split(',').filter((s) => s.trim() !== '').map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < min) usage(`--${name} expects integers >= ${min}, got '${s}'`);
    return v;
  });
  if (out.length === 0) usage(`--${name} is empty`);
  return out;
};

const opt = {
  qpipe: process.env.QPIPE_BIN || path.join(repo, 'build', 'qpipe'),
  models: [path.join(shared, 'models', 'resnet8.onnx'), path.join(shared, 'models', 'resnet8_int8_ort_reference.onnx')],
  data: path.join(shared, 'data', 'cifar-10-batches-bin'),
  batches: [1, 256],
  threads: [1, 2],
  seconds: 1,
  rounds: 1,
  disabled: true,
  skipQpipe: false,
  json: null,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; ++i) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--qpipe') opt.qpipe = path.resolve(val());
  else if (a === '--model') opt.models = val().split(',').filter((s) => s !== '').map((m) => path.resolve(m));
  else if (a === '--data') opt.data = val();
  else if (a === '--batch') opt.batches = intList('batch', val(), 1);
  else if (a === '--threads') opt.threads = intList('threads', val(), 1);
  else if (a === '--seconds') {
    opt.seconds = Number(val());
    if (!(opt.seconds >= 0)) usage('--seconds expects a number >= 0');
  } else if (a === '--rounds') opt.rounds = intList('rounds', val(), 1)[0];
  else if (a === '--no-disabled') opt.disabled = false;
  else if (a === '--skip-qpipe') opt.skipQpipe = true;
  else if (a === '--json') opt.json = val();
  else if (a === '--help' || a === '-h') usage();
  else usage(`unknown option '${a}'`);
}
for (const m of opt.models) if (!fs.existsSync(m)) { console.error(`ort_bench: ${m}: model file not found`); process.exit(4); }

// Input: the first B CIFAR-10 test images (NHWC float32 0..255, as qpipe
// feeds them), or the same synthetic generator qpipe bench uses.
let cifar = null;
if (opt.data !== 'none' && fs.existsSync(path.join(opt.data, 'test_batch.bin'))) {
  cifar = fs.readFileSync(path.join(opt.data, 'test_batch.bin'));
  if (cifar.length % 3073 !== 0) { console.error(`ort_bench: ${opt.data}/test_batch.bin: size is not a multiple of 3073`); process.exit(4); }
} else if (opt.data !== 'none' && process.argv.includes('--data')) {
  console.error(`ort_bench: ${opt.data}: no test_batch.bin (use --data none for synthetic input)`);
  process.exit(4);
}

function makeInput(batch, dims) {
  const shape = [batch, ...dims.slice(1)];
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  if (cifar) {
    const records = cifar.length / 3073;
    for (let i = 0; i < batch; ++i) {
      const off = (i % records) * 3073;
      for (let c = 0; c < 3; ++c)
        for (let p = 0; p < 1024; ++p) x[(i * 1024 + p) * 3 + c] = cifar[off + 1 + c * 1024 + p];
    }
  } else {
    // qpipe bench's generator: 64-bit LCG, bits 33..40.
    let s = 0x9E3779B97F4A7C15n;
    const mask = (1n << 64n) - 1n;
    for (let i = 0; i < n; ++i) {
      s = (s * 6364136223846793005n + 1442695040888963407n) & mask;
      x[i] = Number((s >> 33n) & 0xffn);
    }
  }
  return new ort.Tensor('float32', x, shape);
}

const isQdq = (file) => {
  const bytes = fs.readFileSync(file);
  return bytes.includes(Buffer.from('QuantizeLinear')) || bytes.includes(Buffer.from('DequantizeLinear'));
};

async function timeOrt(file, level, batch, threads) {
  const sess = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: level, intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const inName = sess.inputNames[0];
  // Input dims: ResNet8 takes [N,32,32,3]; other models need metadata
  // (onnxruntime-node >= 1.20 exposes inputMetadata).
  let dims = [batch, 32, 32, 3];
  const meta = sess.inputMetadata && sess.inputMetadata[0];
  if (meta && Array.isArray(meta.shape) && meta.shape.length > 1 && meta.shape.slice(1).every((d) => typeof d === 'number' && d > 0))
    dims = [batch, ...meta.shape.slice(1)];
  const feeds = { [inName]: makeInput(batch, dims) };
  await sess.run(feeds);  // warm-up
  const ms = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    await sess.run(feeds);
    const t1 = performance.now();
    ms.push(t1 - t0);
    if (ms.length >= 3 && (t1 - start) / 1000 >= opt.seconds) break;
  }
  if (sess.release) await sess.release();
  ms.sort((a, b) => a - b);
  const med = ms.length % 2 ? ms[(ms.length - 1) / 2] : 0.5 * (ms[ms.length / 2 - 1] + ms[ms.length / 2]);
  return { ms: med, runs: ms.length, imagesPerS: (batch * 1000) / med };
}

const stem = (f) => path.basename(f).replace(/\.onnx$/, '');
const version = (ort.env && ort.env.versions && ort.env.versions.common) || '';

// Keeps the faster of two measurements of one configuration.
const better = (a, b) => (!a || b.imagesPerS > a.imagesPerS ? b : a);

async function ortRound() {
  const rows = [];
  for (const file of opt.models) {
    const levels = ['all'];
    if (opt.disabled && isQdq(file)) levels.push('disabled');
    for (const level of levels)
      for (const batch of opt.batches)
        for (const threads of opt.threads) {
          const r = await timeOrt(file, level, batch, threads);
          rows.push({ model: stem(file), level, batch, threads, ...r });
        }
  }
  return rows;
}

// qpipe bench in a child process (its RSS is its own); null when skipped.
let qpipeNote = '';
function qpipeRound() {
  if (opt.skipQpipe) {
    qpipeNote = 'qpipe skipped (--skip-qpipe)';
    return null;
  }
  if (!fs.existsSync(opt.qpipe)) {
    qpipeNote = `qpipe binary not found at ${opt.qpipe} (build it, or pass --qpipe BIN / set QPIPE_BIN)`;
    return null;
  }
  const tmp = path.join(os.tmpdir(), `qpipe_bench_${process.pid}.json`);
  const args = ['bench', '--model', opt.models.join(','), '--batch', opt.batches.join(','), '--threads',
                opt.threads.join(','), '--exec-mode', 'all', '--seconds', String(opt.seconds), '--json', tmp];
  if (cifar) args.push('--data', opt.data);
  const r = spawnSync(opt.qpipe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) {
    console.error(`ort_bench: ${opt.qpipe} ${args.join(' ')} exited with ${r.status}`);
    process.exit(r.status || 1);
  }
  const out = JSON.parse(fs.readFileSync(tmp, 'utf8'));
  fs.rmSync(tmp, { force: true });
  return out;
}

// 1.-2. ONNX Runtime, then qpipe bench, --rounds times; best round per row.
let ortRows = null;
let q = null;
for (let round = 0; round < opt.rounds; ++round) {
  const o = await ortRound();
  ortRows = ortRows ? ortRows.map((a, i) => better(a, o[i])) : o;
  const qr = qpipeRound();
  if (qr) {
    if (!q) q = qr;
    else {
      q.rows = q.rows.map((a, i) => better({ ...a, imagesPerS: a.images_per_s }, { ...qr.rows[i], imagesPerS: qr.rows[i].images_per_s }));
      q.peak_rss_mib = Math.max(q.peak_rss_mib, qr.peak_rss_mib);
    }
  }
}
const ortPeakMiB = process.resourceUsage().maxRSS / 1024;

// 3. One table.
const findOrt = (model, level, batch, threads) =>
  ortRows.find((o) => o.model === model && o.level === level && o.batch === batch && o.threads === threads);
const fmt = (x, d = 1) => (x === undefined || x === null ? '-' : x.toFixed(d));
const lines = [];
lines.push(`input: ${cifar ? `CIFAR-10 test images (${opt.data}, the first B)` : 'synthetic uniform integers 0..255'}; ` +
           `${opt.seconds} s per configuration, median ms/batch, best of ${opt.rounds} round(s); ${os.cpus().length} logical CPUs (${os.cpus()[0]?.model || '?'})`);
lines.push(`peer: onnxruntime-node ${version}, intraOpNumThreads = threads, sequential`);
lines.push('');
if (q) {
  lines.push('| model | batch | threads | qpipe mode | qpipe ISA | qpipe img/s | ORT peer | ORT img/s | qpipe/ORT | ORT all img/s | qpipe/ORT all |');
  lines.push('|---|---:|---:|---|---|---:|---|---:|---:|---:|---:|');
  const modelIsQdq = Object.fromEntries(opt.models.map((f) => [stem(f), isQdq(f)]));
  for (const r of q.rows) {
    const level = r.mode === 'reference' && modelIsQdq[r.model] ? 'disabled' : 'all';
    const peer = findOrt(r.model, level, r.batch, r.threads);
    const all = findOrt(r.model, 'all', r.batch, r.threads);
    lines.push(`| ${r.model} | ${r.batch} | ${r.threads} | ${r.mode} | ${r.isa} | ${fmt(r.images_per_s)} | ` +
               `${peer ? level : '-'} | ${fmt(peer?.imagesPerS)} | ${peer ? fmt(r.images_per_s / peer.imagesPerS, 2) : '-'} | ` +
               `${fmt(all?.imagesPerS)} | ${all ? fmt(r.images_per_s / all.imagesPerS, 2) : '-'} |`);
  }
  for (const s of q.skipped || []) lines.push(`qpipe skipped: ${s.model} ${s.mode}: ${s.reason}`);
  lines.push('');
  lines.push(`peak RSS: qpipe bench ${fmt(q.peak_rss_mib, 0)} MiB, node + ORT ${fmt(ortPeakMiB, 0)} MiB`);
} else {
  lines.push('| model | ORT opt | batch | threads | ORT img/s | ms/batch |');
  lines.push('|---|---|---:|---:|---:|---:|');
  for (const o of ortRows)
    lines.push(`| ${o.model} | ${o.level} | ${o.batch} | ${o.threads} | ${fmt(o.imagesPerS)} | ${fmt(o.ms, 3)} |`);
  lines.push('');
  lines.push(qpipeNote);
  lines.push(`peak RSS: node + ORT ${fmt(ortPeakMiB, 0)} MiB`);
}
console.log(lines.join('\n'));

if (opt.json) {
  fs.writeFileSync(opt.json, JSON.stringify({ ort: { version, rows: ortRows, peak_rss_mib: ortPeakMiB }, qpipe: q }, null, 2) + '\n');
}
