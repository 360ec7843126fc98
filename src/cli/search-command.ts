/**
 * `pathembed search`: the patches most similar to a patch (the one under a level-0 point) or to an
 * embedding, by cosine distance. Against a running API (POST /v1/search, a job or a batch) or,
 * with no service at all, against a local JSON result file, through the same search core.
 * Prints a table, or the API's JSON answer with --json.
 *
 *   pathembed search --api URL (--job ID | --batch ID --patch-job ID) --x X --y Y [--k 20] [--api-key KEY]
 *   pathembed search --result result.json --x X --y Y [--k 20]
 *   pathembed search ... --embedding query.json   (a JSON array of 384 numbers, instead of --x/--y)
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { searchBuildOptions } from '../domain-options.js';
import { PathembedError } from '../errors.js';
import { readResult } from '../results/index.js';
import { indexOfDocument, MemoryIndexes, type SearchAnswer, searchSimilar } from '../search/index.js';
import { apiError, call } from './batch-command.js';

const DEFAULT_API = 'http://127.0.0.1:8080';
const DEFAULT_K = 20;

interface SearchCommandOptions {
  api: string;
  apiKey?: string;
  job?: string;
  batch?: string;
  patchJob?: string;
  result?: string;
  x?: string;
  y?: string;
  embedding?: string;
  k: string;
  json?: boolean;
}

function integer(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new PathembedError('INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}, not ${value}`, {
      [name]: value,
    });
  }
  return n;
}

async function embeddingFrom(file: string): Promise<number[]> {
  const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new PathembedError('INVALID_ARGUMENT', `${file} is not a JSON array of numbers`, { file });
  }
  return parsed;
}

/** The job id a local result file is known by: its file name without .json. */
export function localJobId(file: string): string {
  return path.basename(file).replace(/\.json$/i, '');
}

async function searchLocal(
  opts: SearchCommandOptions,
  k: number,
  point?: { x: number; y: number },
  embedding?: number[],
) {
  const file = opts.result!;
  const jobId = localJobId(file);
  const index = await indexOfDocument(jobId, await readResult(file), searchBuildOptions(loadConfig()));
  return searchSimilar(new MemoryIndexes([index]), {
    scope: { jobId },
    target: point ? { patch: { jobId, ...point } } : { embedding: Float32Array.from(embedding!) },
    k,
  });
}

async function searchApi(
  opts: SearchCommandOptions,
  k: number,
  point?: { x: number; y: number },
  embedding?: number[],
) {
  const body = {
    ...(opts.job ? { jobId: opts.job } : { batchId: opts.batch }),
    ...(point ? { patch: { ...(opts.patchJob ? { jobId: opts.patchJob } : {}), ...point } } : { embedding }),
    k,
  };
  const res = await call(opts, 'POST', '/v1/search', body);
  if (res.status !== 200) throw apiError(res.status, res.body, 'search');
  return res.body as SearchAnswer;
}

/** The answer as a plain-text table, nearest first. */
export function searchTable(answer: SearchAnswer): string {
  const rows = answer.neighbours.map((n, i) => [
    String(i + 1),
    n.distance.toFixed(6),
    n.jobId,
    String(n.patchIndex),
    String(n.x),
    String(n.y),
    `${n.width}x${n.height}`,
    n.source.seriesInstanceUid ?? '',
  ]);
  const head = ['#', 'distance', 'job', 'patch', 'x', 'y', 'size', 'series'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  const q = answer.query.patch;
  const title = q
    ? `query: patch ${q.patchIndex} of ${q.jobId} at (${q.x}, ${q.y}) ${q.width}x${q.height}`
    : `query: an embedding of ${answer.query.embedding?.dimension} values`;
  return [
    title,
    `index: ${answer.index.kind}, ${answer.index.size} patches in ${answer.index.jobs} job(s)`,
    line(head),
    ...rows.map(line),
  ].join('\n');
}

export function registerSearchCommand(program: Command): void {
  program
    .command('search')
    .description(
      'The patches most similar to a patch (level-0 point) or an embedding, via the API or in a local result',
    )
    .option('--api <url>', 'the pathembed API', DEFAULT_API)
    .option('--api-key <key>', 'API key (when the API has PATHEMBED_API_KEYS)')
    .option('--job <id>', 'search this completed job (API)')
    .option('--batch <id>', 'search the completed jobs of this batch (API)')
    .option('--patch-job <id>', 'with --batch: the job the point is in')
    .option('--result <file>', 'search this local JSON result instead of an API (no service needed)')
    .option('--x <px>', 'level-0 column of a point inside the query patch')
    .option('--y <px>', 'level-0 row of a point inside the query patch')
    .option('--embedding <file>', 'query with this embedding (JSON array) instead of a point')
    .option('--k <n>', 'neighbours to show (the query patch is one of them)', String(DEFAULT_K))
    .option('--json', 'print the answer as JSON (the /v1/search response)')
    .action(async (opts: SearchCommandOptions) => {
      const where = [opts.job, opts.batch, opts.result].filter((v) => v !== undefined).length;
      if (where !== 1) {
        throw new PathembedError('INVALID_ARGUMENT', 'Give exactly one of --job, --batch and --result');
      }
      const k = integer(opts.k, '--k', 1)!;
      const x = integer(opts.x, '--x', 0);
      const y = integer(opts.y, '--y', 0);
      if ((x === undefined) !== (y === undefined) || (x === undefined) === (opts.embedding === undefined)) {
        throw new PathembedError('INVALID_ARGUMENT', 'Give --x and --y, or --embedding');
      }
      const point = x !== undefined && y !== undefined ? { x, y } : undefined;
      const embedding = opts.embedding ? await embeddingFrom(opts.embedding) : undefined;
      const answer = opts.result
        ? await searchLocal(opts, k, point, embedding)
        : await searchApi(opts, k, point, embedding);
      process.stdout.write(`${opts.json ? JSON.stringify(answer, null, 2) : searchTable(answer)}\n`);
    });
}
