/**
 * `pathembed doctor` and the GPU probe on this machine, which has no NVIDIA driver and no CUDA 13
 * cuBLAS/cuRAND/cuDNN: real ldd, real nvidia-smi lookup, real provider libraries from the pinned
 * npm package (the two small ones; test/helpers/gpu-provider-libs.ts). Asserts the messages a user
 * without CUDA gets, and that LD_LIBRARY_PATH is honoured as the loader honours it.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { parseLdd, probeGpu } from '../../src/embed/gpu-probe.js';
import { SMALL_PROVIDER_LIBRARIES, smallProviderLibraries } from '../helpers/gpu-provider-libs.js';

const run = promisify(execFile);
const NO_DRIVER =
  'nvidia-smi is not installed: no NVIDIA driver on this machine (in a container, run it with --gpus all and the NVIDIA container toolkit)';

let dir: string;
let small: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-doctor-'));
  small = path.join(dir, 'small');
  await mkdir(small);
  const real = await smallProviderLibraries();
  for (const lib of SMALL_PROVIDER_LIBRARIES)
    await copyFile(path.join(real, lib.file), path.join(small, lib.file));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function doctor(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = await run('npx', ['tsx', 'src/cli/main.ts', 'doctor', ...args], {
    cwd: REPO_ROOT,
    env,
  }).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  );
  const errorLine = result.stderr.split('\n').find((l) => l.startsWith('{"error"'));
  return {
    code: result.code,
    report: JSON.parse(result.stdout),
    error: errorLine ? JSON.parse(errorLine).error : undefined,
  };
}

describe('pathembed doctor without CUDA', () => {
  it('names the missing provider libraries and both ways to install them', async () => {
    const empty = path.join(dir, 'empty');
    await mkdir(empty);
    const { code, report, error } = await doctor(['--provider-folder', empty]);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.providers.map((p: { present: boolean }) => p.present)).toEqual([false, false, false]);
    expect(report.driver).toEqual({ gpus: [], error: NO_DRIVER });
    expect(report.session).toBeUndefined();
    expect(error.code).toBe('EXECUTION_PROVIDER_UNAVAILABLE');
    expect(error.message).toBe(
      `cuda cannot run on this machine: libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so not installed in ${empty}: run \`npm run gpu:install\` (CUDA 13, from the npm registry) or install onnxruntime-node's NuGet build (ONNXRUNTIME_NODE_INSTALL=cuda12, CUDA 12); see deploy/gpu-install.md.`,
    );
    expect(report.problems).toEqual([error.details.problem, NO_DRIVER]);
  });

  it('reports the pinned checksums of the libraries it finds and what TensorRT lacks', async () => {
    const { code, report, error } = await doctor([
      '--provider-folder',
      small,
      '--execution-provider',
      'tensorrt',
    ]);
    expect(code).toBe(1);
    const shared = report.providers.find(
      (p: { file: string }) => p.file === 'libonnxruntime_providers_shared.so',
    );
    expect(shared).toEqual({
      file: 'libonnxruntime_providers_shared.so',
      present: true,
      sha256: SMALL_PROVIDER_LIBRARIES[0].sha256,
      pinned: true,
    });
    // libnvinfer and libnvonnxparser come with TensorRT, which this machine does not have.
    expect(report.missing).toEqual(
      expect.arrayContaining(['libnvinfer.so.10', 'libnvonnxparser.so.10', 'libcublas.so.13']),
    );
    expect(report.problems).toContain(
      'libnvinfer.so.10 (needed by libonnxruntime_providers_tensorrt.so) is not found by the loader: install TensorRT 10 for CUDA 13 (pip wheel tensorrt-cu13-libs, or apt libnvinfer10); then add the folder holding it to LD_LIBRARY_PATH (pip wheels put it in site-packages/nvidia/*/lib)',
    );
    expect(error.message).toContain('libonnxruntime_providers_cuda.so not installed');
  });

  it('finds a library through LD_LIBRARY_PATH as the loader does', async () => {
    const libs = path.join(dir, 'ld-path');
    await mkdir(libs);
    // Any x86-64 shared object named as the soname satisfies the loader's lookup; libm is one.
    const { stdout } = await run('ldconfig', ['-p']);
    const libm = stdout
      .split('\n')
      .find((l) => l.includes('libm.so.6 (libc6,x86-64)'))
      ?.split('=>')[1]
      ?.trim();
    expect(libm).toBeDefined();
    await symlink(libm as string, path.join(libs, 'libnvinfer.so.10'));
    const before = await probeGpu('tensorrt', { providerFolder: small });
    const saved = process.env.LD_LIBRARY_PATH;
    process.env.LD_LIBRARY_PATH = libs;
    try {
      const after = await probeGpu('tensorrt', { providerFolder: small });
      expect(before.missing.map((m) => m.soname)).toContain('libnvinfer.so.10');
      expect(after.missing.map((m) => m.soname)).not.toContain('libnvinfer.so.10');
      expect(after.libraries).toContainEqual({
        soname: 'libnvinfer.so.10',
        path: path.join(libs, 'libnvinfer.so.10'),
        neededBy: 'libonnxruntime_providers_tensorrt.so',
      });
      expect(after.ldLibraryPath).toEqual([libs]);
    } finally {
      if (saved === undefined) delete process.env.LD_LIBRARY_PATH;
      else process.env.LD_LIBRARY_PATH = saved;
    }
  });

  it('parses ldd lines, found and not found', () => {
    expect(
      parseLdd(
        '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibcublas.so.13 => not found\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n',
      ),
    ).toEqual([
      { soname: 'libcublas.so.13' },
      { soname: 'libm.so.6', path: '/lib/x86_64-linux-gnu/libm.so.6' },
    ]);
  });
});
