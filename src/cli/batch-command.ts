/**
 * `pathembed batch`: submits a cohort to a running API (POST /v1/batches) and follows it to the
 * end with a progress bar, then prints the failed slides and where the manifest is. The input is a
 * study or series URL, a JSON file (a search source `{"search": {...}}`, a `{"sources": [...]}`
 * body or an array of sources), or a text file of series URLs, one a line. Exits non-zero when
 * any slide failed.
 *
 *   pathembed batch <study URL | search.json | urls.txt> [--api URL] [--api-key KEY] [-o manifest.csv]
 */
import { readFile, writeFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { PathembedError } from '../errors.js';

/** How often the batch is polled: often enough for a live bar, rare enough to cost the API nothing. */
const DEFAULT_POLL_MS = 2000;
/** On a non-terminal, a plain progress line at most this often. */
const PLAIN_PROGRESS_INTERVAL_MS = 10_000;
const DEFAULT_API = 'http://127.0.0.1:8080';
/** What a line of a URL file starts with when it is a comment. */
const COMMENT_PREFIX = '#';

interface BatchCommandOptions {
  api: string;
  apiKey?: string;
  token?: string;
  outputs: string;
  minTissue?: string;
  stride?: string;
  priority?: string;
  recompute?: boolean;
  pollMs: string;
  output?: string;
  format: 'csv' | 'json';
  wait: boolean;
}

interface BatchView {
  id: string;
  state: 'running' | 'completed' | 'failed' | 'cancelled';
  slides: number;
  counts: Record<string, number>;
  progress: {
    finished: number;
    patchesDone: number;
    patchesPlanned: number;
    slidesPerMinute: number | null;
    etaSeconds: number | null;
  };
  failed: Array<{ jobId: string; seriesUrl: string; code: string; message: string }>;
  skipped: Array<{ seriesUrl: string; reason: string }>;
  links: { self: string; manifest: string };
  existing?: boolean;
  reusedJobs?: number;
}

const isReference = (s: string) => /^https?:\/\//i.test(s) || /^\/?projects\//.test(s);

/** The sources an input names (see the module comment). */
export async function sourcesFrom(input: string): Promise<unknown[]> {
  if (isReference(input.trim())) return [input.trim()];
  let text: string;
  try {
    text = await readFile(input, 'utf8');
  } catch (err) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${input} is neither a study or series URL nor a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give a URL, a search JSON file or a file of series URLs.`,
      { input },
    );
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw new PathembedError('INVALID_ARGUMENT', `${input}: not valid JSON: ${(err as Error).message}`, {
        input,
      });
    }
    if (Array.isArray(parsed)) return parsed;
    const obj = parsed as Record<string, unknown>;
    if (Array.isArray(obj.sources)) return obj.sources;
    if (obj.search !== undefined) return [obj];
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${input}: a JSON input must be a search ({"search": {"store", "filters", "limit"}}), {"sources": [...]} or an array of sources`,
      { input },
    );
  }
  const urls = trimmed
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith(COMMENT_PREFIX));
  if (urls.length === 0) {
    throw new PathembedError('INVALID_ARGUMENT', `${input} holds no URLs`, { input });
  }
  return urls;
}

/** One request to the API (`api` base URL, `apiKey` when set); the body parsed when it is JSON. */
export async function call(
  opts: { readonly api: string; readonly apiKey?: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown; text: string }> {
  const url = `${opts.api.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new PathembedError(
      'SERVICE_UNAVAILABLE',
      `Cannot reach the pathembed API at ${opts.api} (${(err as Error).message}); start it with \`pathembed serve\` or pass --api`,
      { api: opts.api },
    );
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** An API error answer as the PathembedError it describes (its code, message and details). */
export function apiError(status: number, body: unknown, what: string): PathembedError {
  const e = (body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })
    ?.error;
  if (e?.code && e.message) {
    return new PathembedError(
      e.code as ConstructorParameters<typeof PathembedError>[0],
      `${what}: ${e.message}`,
      e.details ?? {},
    );
  }
  return new PathembedError('INTERNAL', `${what}: the API answered ${status}`, { status });
}

interface Reporter {
  update(b: BatchView): void;
  stop(): void;
}

function reporter(stream: NodeJS.WriteStream = process.stderr): Reporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format:
          'batch [{bar}] {value}/{total} slides | {failed} failed | {patches} patches | {rate} slides/min | ETA {etaText}',
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(b) {
        const payload = {
          failed: b.failed.length,
          patches: b.progress.patchesDone,
          rate: b.progress.slidesPerMinute?.toFixed(1) ?? '-',
          etaText: b.progress.etaSeconds === null ? '-' : `${b.progress.etaSeconds}s`,
        };
        if (!started) {
          bar.start(b.slides, b.progress.finished, payload);
          started = true;
        }
        bar.update(b.progress.finished, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastMs = 0;
  return {
    update(b) {
      const now = Date.now();
      if (b.state === 'running' && now - lastMs < PLAIN_PROGRESS_INTERVAL_MS) return;
      lastMs = now;
      stream.write(
        `batch ${b.id}: ${b.progress.finished}/${b.slides} slides finished, ${b.failed.length} failed, ${b.progress.patchesDone} patches\n`,
      );
    },
    stop() {},
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerBatchCommand(program: Command): void {
  program
    .command('batch <input>')
    .description(
      'submit a cohort (a study URL, a search JSON file or a file of series URLs) to a running API and follow it',
    )
    .option('--api <url>', 'the pathembed API', DEFAULT_API)
    .option('--api-key <key>', 'API key (when the API has PATHEMBED_API_KEYS)')
    .option('--token <token>', 'bearer token for the store(s), kept encrypted while the jobs run')
    .option('--outputs <list>', 'comma-separated outputs (json, dicom-sr, dicom-ann)', 'json')
    .option('--min-tissue <f>', 'least tissue fraction of a grid patch')
    .option('--stride <px>', 'grid stride at the target spacing')
    .option('--priority <n>', '1 runs first, 10 last')
    .option('--recompute', 'run again even when the same jobs exist')
    .option('--poll-ms <ms>', 'how often to poll the batch', String(DEFAULT_POLL_MS))
    .option('-o, --output <file>', 'also download the manifest to this file')
    .option('--format <format>', 'manifest format for -o: csv or json', 'csv')
    .option('--no-wait', 'submit and print the batch without following it')
    .action(async (input: string, opts: BatchCommandOptions) => {
      const sources = await sourcesFrom(input);
      const options: Record<string, number> = {};
      if (opts.minTissue !== undefined) options.minTissue = Number(opts.minTissue);
      if (opts.stride !== undefined) options.stridePx = Number(opts.stride);
      const body = {
        sources,
        options,
        outputs: opts.outputs.split(',').map((s) => s.trim()),
        ...(opts.token ? { bearerToken: opts.token } : {}),
        ...(opts.priority ? { priority: Number(opts.priority) } : {}),
        ...(opts.recompute ? { recompute: true } : {}),
      };
      const submitted = await call(opts, 'POST', '/v1/batches', body);
      if (submitted.status !== 202) throw apiError(submitted.status, submitted.body, 'POST /v1/batches');
      let batch = submitted.body as BatchView;
      for (const s of batch.skipped) process.stderr.write(`skipped ${s.seriesUrl}: ${s.reason}\n`);
      const pollMs = Number(opts.pollMs);
      if (opts.wait) {
        const bar = reporter();
        try {
          bar.update(batch);
          while (batch.state === 'running') {
            await sleep(pollMs);
            const polled = await call(opts, 'GET', batch.links.self);
            if (polled.status !== 200) throw apiError(polled.status, polled.body, `GET ${batch.links.self}`);
            batch = polled.body as BatchView;
            bar.update(batch);
          }
        } finally {
          bar.stop();
        }
      }
      const manifestUrl = `${opts.api.replace(/\/+$/, '')}${batch.links.manifest}`;
      let manifestFile: string | undefined;
      if (opts.output) {
        const got = await call(opts, 'GET', `${batch.links.manifest}?format=${opts.format}`);
        if (got.status !== 200) throw apiError(got.status, got.body, `GET ${batch.links.manifest}`);
        await writeFile(opts.output, got.text);
        manifestFile = opts.output;
      }
      for (const f of batch.failed)
        process.stderr.write(`failed ${f.seriesUrl} (job ${f.jobId}): ${f.code}: ${f.message}\n`);
      process.stdout.write(
        `${JSON.stringify(
          {
            batch: batch.id,
            state: batch.state,
            slides: batch.slides,
            counts: batch.counts,
            patchesDone: batch.progress.patchesDone,
            failed: batch.failed,
            skipped: batch.skipped,
            manifest: manifestUrl,
            ...(manifestFile ? { manifestFile } : {}),
          },
          null,
          2,
        )}\n`,
      );
      if (batch.failed.length > 0 || batch.state === 'failed' || batch.state === 'cancelled')
        process.exitCode = 1;
    });
}
