/**
 * `pathembed embed` as a user runs it: a child process against the test Orthanc and a local
 * folder, with the real (synthetic) model in its inference worker.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readResult } from '../../src/results/index.js';
import { readAnnWithPydicom, validateAnnFile } from '../helpers/ann-validation.js';
import { fixture } from '../helpers/services.js';
import { validateSrFile } from '../helpers/sr-validation.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', path.resolve('src/cli/main.ts')];
const ENV = {
  PATHEMBED_INTRA_OP_THREADS: '2',
  PATHEMBED_EXECUTION_PROVIDER: 'cpu',
  PATHEMBED_RETRY_MAX_ATTEMPTS: '1',
  LOG_LEVEL: 'warn',
};

let dir: string;

/** dciodvfy reports no error and dsrdump lists the mean embedding's codes. */
async function checkSr(file: string): Promise<void> {
  const stdout = await validateSrFile(file);
  expect(stdout).toContain('(EMB0000,99PATHEMBED,');
  expect(stdout).toContain('(EMB0383,99PATHEMBED,');
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function pathembed(args: string[]): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PATHEMBED_')));
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], {
      env: { ...clean, ...ENV },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Runs a command that serves until stopped (`demo --serve`, `view`): resolves with its output up to
 * the line `{"ui": link}`, and a `stop` that sends SIGTERM and resolves with the exit code.
 */
async function pathembedServing(
  args: string[],
): Promise<{ stdout: string; stderr: () => string; link: string; stop: () => Promise<number | null> }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PATHEMBED_')));
  const child = spawn(process.execPath, [...CLI, ...args], { env: { ...clean, ...ENV } });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const link = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /^\{"ui":"([^"]+)"\}$/m.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before serving: ${stderr}`)));
  });
  return {
    stdout,
    stderr: () => stderr,
    link,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-embed-cli-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('pathembed embed', () => {
  it('embeds a DICOMweb series into base64 JSON, writes and stores the SR, never writes the token', async () => {
    const token = 'cli-secret-7a1e0c';
    const out = path.join(dir, 'series.json');
    const sr = path.join(dir, 'series.dcm');
    const res = await pathembed([
      'embed',
      fixture('cmu-jpeg').seriesUrl,
      '--pixel-spacing',
      '2',
      '-o',
      out,
      '--sr',
      sr,
      '--stow',
      '--token',
      token,
      '--embedding-encoding',
      'float32-base64',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary.patches).toBeGreaterThan(0);
    expect(summary.result).toBe(out);
    expect(summary.sr.stow).toMatchObject({ ok: true });
    // Not a terminal: plain progress lines, the last one complete.
    expect(res.stderr).toMatch(new RegExp(`embedded ${summary.patches}/${summary.patches} patches`));
    const text = await fs.readFile(out, 'utf8');
    expect(text).not.toContain(token);
    expect(res.stdout + res.stderr).not.toContain(token);
    const doc = await readResult(out);
    expect(doc.header.embeddingEncoding).toBe('float32-base64');
    expect(doc.patches).toHaveLength(summary.patches);
    await checkSr(sr);
  });

  it('embeds explicit patches of a local folder', async () => {
    const patches = path.join(dir, 'patches.json');
    await fs.writeFile(
      patches,
      JSON.stringify([
        { x: 448, y: 672 },
        { x: 896, y: 1120 },
      ]),
    );
    const out = path.join(dir, 'local.json');
    const res = await pathembed(['embed', fixture('cmu-jpeg').dir, '--patches', patches, '-o', out]);
    expect(res.code, res.stderr).toBe(0);
    const doc = await readResult(out);
    expect(doc.header.source.kind).toBe('local');
    expect(doc.header.parameters.patchSelection).toBe('explicit');
    expect(doc.patches.map((p) => [p.x, p.y])).toEqual([
      [448, 672],
      [896, 1120],
    ]);
  });

  it('keeps the JSON and exits 1 with the code when the SR upload fails', async () => {
    const out = path.join(dir, 'kept.json');
    const res = await pathembed([
      'embed',
      fixture('cmu-jpeg').seriesUrl,
      '--pixel-spacing',
      '2',
      '-o',
      out,
      '--stow',
      'https://example.org/dicom-web',
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('UNAPPROVED_DICOM_STORE');
    expect(JSON.parse(res.stdout).sr.stow.ok).toBe(false);
    expect((await readResult(out)).summary.patchCount).toBeGreaterThan(0);
  });

  it('runs the demo: sample slide, JSON, valid bulk annotations and SR, the overview picture, and --serve shows it with no Redis', async () => {
    const out = path.join(dir, 'demo');
    const served = await pathembedServing(['demo', '--output-dir', out, '--serve', '--port', '0']);
    try {
      const summary = JSON.parse(served.stdout.slice(0, served.stdout.lastIndexOf('{"ui"')));
      expect(summary.patches).toBeGreaterThan(100);
      const doc = await readResult(path.join(out, 'result.json'));
      expect(doc.header.source.kind).toBe('local');
      expect(doc.patches).toHaveLength(summary.patches);
      await checkSr(path.join(out, 'result-sr.dcm'));
      const annPath = path.join(out, 'result-ann.dcm');
      await validateAnnFile(annPath);
      const ann = await readAnnWithPydicom(annPath, path.join(out, 'result.json'));
      expect(ann.count).toBe(summary.patches);
      expect(ann.measurements.map((m) => m.code)).toEqual(['TISSUEFRAC', 'PCA1', 'PCA2', 'PCA3']);
      expect(ann.measurements[0]!.values).toEqual(ann.expected.tissue.map((t) => Math.fround(t)));
      expect(summary.ann.sopInstanceUid).toBe(ann.sopInstanceUid);
      expect(served.stderr()).toContain('DICOM annotations');
      const png = await sharp(path.join(out, 'overview.png')).metadata();
      expect(png.format).toBe('png');
      expect(Math.max(png.width ?? 0, png.height ?? 0)).toBeLessThanOrEqual(1024);
      expect(served.stderr()).toContain('overview picture');

      // The printed /ui link serves the page, the demo slide's tiles, its overlay and its search.
      expect(served.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ui\/#\/jobs\/local$/);
      expect(served.stderr()).toContain(served.link);
      const base = new URL(served.link).origin;
      const page = await fetch(`${base}/ui/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
      const layout = await (await fetch(`${base}/v1/jobs/local/slide`)).json();
      expect(layout).toMatchObject({ widthPx: 6144, heightPx: 4096, maxLevel: 13 });
      const tile = await fetch(`${base}/v1/jobs/local/tiles/13/5_5.jpg`);
      expect(tile.headers.get('content-type')).toBe('image/jpeg');
      expect((await sharp(Buffer.from(await tile.arrayBuffer())).metadata()).width).toBe(256);
      const overlay = (await (await fetch(`${base}/v1/jobs/local/overlay`)).json()) as { count: number };
      expect(overlay.count).toBe(summary.patches);
      const p = doc.patches[7]!;
      const search = await fetch(`${base}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jobId: 'local', patch: { x: p.x + 1, y: p.y + 1 }, k: 5 }),
      });
      const answer = (await search.json()) as { neighbours: Array<Record<string, unknown>> };
      expect(answer.neighbours).toHaveLength(5);
      expect(answer.neighbours[0]).toMatchObject({ jobId: 'local', patchIndex: p.index, x: p.x, y: p.y });
    } finally {
      expect(await served.stop()).toBe(0);
    }
  }, 240_000);

  it('refuses --ann-embedding without --ann', async () => {
    const res = await pathembed([
      'embed',
      fixture('cmu-jpeg').dir,
      '-o',
      path.join(dir, 'y.json'),
      '--ann-embedding',
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('INVALID_ARGUMENT');
    expect(res.stderr).toContain('--ann <file>');
  });

  it('refuses a bad option naming it', async () => {
    const res = await pathembed([
      'embed',
      fixture('cmu-jpeg').dir,
      '-o',
      path.join(dir, 'x.json'),
      '--stride',
      'wide',
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('INVALID_ARGUMENT');
    expect(res.stderr).toContain('--stride');
  });
});
