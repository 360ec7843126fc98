/**
 * Similar-patch search at slide and cohort scale (src/search): for n = 10^4, 10^5, 10^6 vectors of
 * 384, clustered like real embeddings (√n centres, points about cos 0.9 from theirs; uniform
 * directions too with --uniform, the hard case for a graph), it measures
 *
 * - exact search (usearch's SIMD scan + double-precision re-rank, ExactIndex): query p50/p95;
 * - HNSW (HnswIndex, usearch): build time, stored bytes, and for each search expansion (ef) the
 *   query p50/p95 and recall@10 against the exact answer, with the ratio to exact in the same run;
 * - the crossover: the smallest n at which an HNSW query beats an exact one.
 *
 * Queries are held-out draws of the same distribution (not indexed vectors, which would find
 * themselves). One query at a time, one search thread, as the API serves them.
 *
 *   npx tsx bench/search.ts [--sizes 10000,100000,1000000] [--queries 200] [--uniform] [--f32]
 */
import os from 'node:os';
import {
  DEFAULT_HNSW,
  ExactIndex,
  HnswIndex,
  type HnswSettings,
  normaliseRows,
} from '../src/search/index.js';
import { clusteredVectors, defaultClusters, uniformVectors } from './search-vectors.js';

const DIM = 384;
const K = 10;
const EXPANSIONS = [16, 32, 64, 128];
const CROSSOVER_SIZES = [250, 500, 1000, 2000, 4000, 8000];

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : def;
};
const sizes = arg('--sizes', '10000,100000,1000000').split(',').map(Number);
const queryCount = Number(arg('--queries', '200'));
const withUniform = args.includes('--uniform');
const withF32 = args.includes('--f32');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** p50 and p95 of `run(q)` over the queries, in ms, after a warm-up pass of 20. */
function latency(queries: Float32Array, run: (q: Float32Array) => void): { p50: number; p95: number } {
  const count = queries.length / DIM;
  for (let q = 0; q < Math.min(20, count); q++) run(queries.subarray(q * DIM, (q + 1) * DIM));
  const ms: number[] = [];
  for (let q = 0; q < count; q++) {
    const v = queries.subarray(q * DIM, (q + 1) * DIM);
    const t = performance.now();
    run(v);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 0.5), p95: percentile(ms, 0.95) };
}

function draw(kind: 'clustered' | 'uniform', n: number, seed: number): Float32Array {
  return kind === 'clustered'
    ? clusteredVectors(n, DIM, defaultClusters(n - queryCount), seed)
    : uniformVectors(n, DIM, seed);
}

const f = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(1));
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

async function measure(kind: 'clustered' | 'uniform', n: number, settings: HnswSettings): Promise<void> {
  const started = performance.now();
  const all = draw(kind, n + queryCount, n);
  const unit = normaliseRows(all.subarray(0, n * DIM), DIM);
  const queries = all.subarray(n * DIM);
  const drawS = (performance.now() - started) / 1000;

  const exact = new ExactIndex(unit, DIM);
  const truth: Set<number>[] = [];
  const exactMs = latency(queries, (q) => {
    truth.push(new Set(exact.search(q, K).ids));
  });
  truth.splice(0, truth.length - queryCount); // the warm-up's answers out

  const t = performance.now();
  const hnsw = await HnswIndex.build(unit, DIM, settings);
  const buildS = (performance.now() - t) / 1000;
  const bytes = await hnsw.serialise();
  console.log(
    `\n${kind} n=${n} quantization=${settings.quantization} M=${settings.connectivity} efConstruction=${settings.expansionAdd}: ` +
      `drawn in ${drawS.toFixed(1)} s; exact p50 ${f(exactMs.p50)} ms p95 ${f(exactMs.p95)} ms; ` +
      `HNSW built in ${buildS.toFixed(1)} s (${(n / buildS).toFixed(0)} vectors/s), graph ${mb(bytes.length)} MB + vectors ${mb(unit.byteLength)} MB`,
  );
  console.log('| ef | recall@10 | HNSW p50 ms | HNSW p95 ms | p50 speed-up vs exact |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const ef of EXPANSIONS) {
    const index = await HnswIndex.load(unit, DIM, bytes, { ...settings, expansionSearch: ef });
    let found = 0;
    let q = 0;
    const ms = latency(queries, (v) => {
      const ids = index.search(v, K).ids;
      // Warm-up queries are the first 20 again: recall counts the measured pass only.
      if (q >= Math.min(20, queryCount))
        found += ids.filter((id) => truth[q - Math.min(20, queryCount)]!.has(id)).length;
      q++;
    });
    console.log(
      `| ${ef} | ${(found / (queryCount * K)).toFixed(4)} | ${f(ms.p50)} | ${f(ms.p95)} | ${(exactMs.p50 / ms.p50).toFixed(1)}x |`,
    );
  }
}

/** Smallest n where an HNSW query (default settings) is faster than an exact one. */
async function crossover(): Promise<void> {
  console.log('\ncrossover (clustered, default HNSW settings, k = 20):');
  console.log('| n | exact p50 ms | HNSW p50 ms | HNSW build ms | exact / HNSW |');
  console.log('|---:|---:|---:|---:|---:|');
  let found: number | undefined;
  for (const n of CROSSOVER_SIZES) {
    const all = draw('clustered', n + queryCount, n);
    const unit = normaliseRows(all.subarray(0, n * DIM), DIM);
    const queries = all.subarray(n * DIM);
    const exact = new ExactIndex(unit, DIM);
    const t = performance.now();
    const hnsw = await HnswIndex.build(unit, DIM, DEFAULT_HNSW);
    const buildMs = performance.now() - t;
    const e = latency(queries, (q) => exact.search(q, 20));
    const h = latency(queries, (q) => hnsw.search(q, 20));
    if (found === undefined && h.p50 < e.p50) found = n;
    console.log(
      `| ${n} | ${f(e.p50)} | ${f(h.p50)} | ${buildMs.toFixed(0)} | ${(e.p50 / h.p50).toFixed(2)} |`,
    );
  }
  console.log(`HNSW queries are faster from n = ${found ?? `> ${CROSSOVER_SIZES.at(-1)}`} on.`);
}

console.log(
  `bench/search: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the start; dim ${DIM}, ${queryCount} held-out queries, k = ${K}; ` +
    `HNSW defaults M=${DEFAULT_HNSW.connectivity} efConstruction=${DEFAULT_HNSW.expansionAdd} ef=${DEFAULT_HNSW.expansionSearch} ${DEFAULT_HNSW.quantization}`,
);
await crossover();
for (const n of sizes) {
  await measure('clustered', n, DEFAULT_HNSW);
  if (withF32 && n <= 100_000) await measure('clustered', n, { ...DEFAULT_HNSW, quantization: 'f32' });
  if (withUniform && n <= 100_000) await measure('uniform', n, DEFAULT_HNSW);
}
console.log(
  `\nload average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at the end`,
);
