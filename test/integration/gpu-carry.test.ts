/**
 * The GPU machine check's chunked carry (bench/gpu-check.sh), rehearsed here: a payload (the real
 * small provider libraries and incompressible bytes) is packed, split into 1 MiB parts and
 * carried call by call into a temporary "device" folder, which unpacks it only once every part
 * is there and checked. A part altered on the way is refused by name. The full payload (Node,
 * the project, the 230 MB CUDA provider) is rehearsed by `bench/gpu-check.sh dry-run` itself.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { SMALL_PROVIDER_LIBRARIES, smallProviderLibraries } from '../helpers/gpu-provider-libs.js';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'bench', 'gpu-check.sh');
const RANDOM_BYTES = 2_500_000;

let dir: string;
let payload: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-carry-'));
  payload = path.join(dir, 'payload');
  await mkdir(path.join(payload, 'lib'), { recursive: true });
  const real = await smallProviderLibraries();
  for (const lib of SMALL_PROVIDER_LIBRARIES)
    await copyFile(path.join(real, lib.file), path.join(payload, 'lib', lib.file));
  await writeFile(path.join(payload, 'random.bin'), randomBytes(RANDOM_BYTES));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run('bash', [SCRIPT, ...args], { env: { ...process.env, ...env } }).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  );
}

describe('bench/gpu-check.sh carry', () => {
  it('carries a payload in 1 MiB parts, one call each, and unpacks it only when all are there', async () => {
    const { code, stdout, stderr } = await script(['dry-run', '--payload', payload, '--part-mib', '1']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('dry-run call '))).toHaveLength(3);
    expect(lines).toContain(
      'gpu-check: still missing: part-01 part-02 (next call: carry .gpu-carry/manifest.sha256 and .gpu-carry/part-01)',
    );
    expect(lines.filter((l) => l.startsWith('gpu-check: payload unpacked'))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^dry-run: 3 calls, reassembled and unpacked into .*, sha256 checked$/);
  });

  it('refuses a part altered on the way, naming it, and unpacks nothing', async () => {
    const packed = path.join(dir, 'packed');
    const work = path.join(dir, 'device');
    const packedRun = await script(['pack', '--out', packed, '--payload', payload, '--part-mib', '1']);
    expect(packedRun.code).toBe(0);
    expect(packedRun.stdout).toContain('gpu-check: 3 parts; make these calls back to back');
    expect((await readdir(packed)).sort()).toEqual(['manifest.sha256', 'part-00', 'part-01', 'part-02']);
    const part = path.join(packed, 'part-01');
    const bytes = await readFile(part);
    bytes[1000] ^= 0xff;
    await writeFile(part, bytes);
    const received = await script(['receive', packed], { GPU_CHECK_WORK: work });
    expect(received.code).toBe(1);
    expect(received.stderr).toMatch(
      /^gpu-check: FAILED: part-01 arrived with sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}: carry it again\n$/,
    );
    expect(await readdir(work)).toEqual(['parts']);
  });
});
