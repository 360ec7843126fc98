import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GLIBC_MALLOC_TUNABLES, withMallocTunables } from '../../src/process-memory.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const LAUNCHER = path.join(REPO, 'bin', 'pathembed');
const IMAGES = ['Dockerfile.api', 'Dockerfile.worker', 'Dockerfile.gpu'].map((f) =>
  path.join(REPO, 'deploy', f),
);

/**
 * A copy of bin/pathembed beside a stand-in dist/src/cli/main.js that prints what it was started
 * with: the launcher itself runs for real, with the real node.
 */
function launcherTree(): { dir: string; launcher: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-launcher-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.mkdirSync(path.join(dir, 'dist', 'src', 'cli'), { recursive: true });
  const launcher = path.join(dir, 'bin', 'pathembed');
  fs.copyFileSync(LAUNCHER, launcher);
  fs.chmodSync(launcher, 0o755);
  fs.writeFileSync(
    path.join(dir, 'dist', 'src', 'cli', 'main.js'),
    'process.stdout.write(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES ?? null, argv: process.argv.slice(2) }));\n' +
      'process.exitCode = Number(process.env.STAND_IN_EXIT ?? 0);\n',
  );
  return { dir, launcher };
}

function envWithout(name: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env[name];
  return env;
}

describe('process memory: the malloc settings pathembed starts with', () => {
  const tree = launcherTree();
  afterAll(() => fs.rmSync(tree.dir, { recursive: true, force: true }));

  it('bin/pathembed starts the CLI with GLIBC_MALLOC_TUNABLES and passes its arguments on unchanged', () => {
    const out = execFileSync(tree.launcher, ['embed', 'a b', '--x=1'], {
      env: envWithout('GLIBC_TUNABLES'),
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({ tunables: GLIBC_MALLOC_TUNABLES, argv: ['embed', 'a b', '--x=1'] });
  });

  it("bin/pathembed keeps the caller's own GLIBC_TUNABLES, even an empty one", () => {
    for (const own of ['glibc.malloc.arena_max=2', '']) {
      const out = execFileSync(tree.launcher, [], {
        env: { ...process.env, GLIBC_TUNABLES: own },
        encoding: 'utf8',
      });
      expect(JSON.parse(out).tunables).toBe(own);
    }
  });

  it("bin/pathembed works through a symlink (npm's node_modules/.bin) and returns the CLI's exit status", () => {
    const link = path.join(tree.dir, 'linked-pathembed');
    fs.symlinkSync(tree.launcher, link);
    const run = spawnSync(link, ['doctor'], {
      env: envWithout('GLIBC_TUNABLES', { STAND_IN_EXIT: '3' }),
      encoding: 'utf8',
    });
    expect(run.status).toBe(3);
    expect(JSON.parse(run.stdout)).toEqual({ tunables: GLIBC_MALLOC_TUNABLES, argv: ['doctor'] });
  });

  it('every image and npm script that runs pathembed sets the same GLIBC_TUNABLES as the launcher', () => {
    for (const file of IMAGES) {
      const env = fs.readFileSync(file, 'utf8').match(/^\s*GLIBC_TUNABLES=(\S+)/m);
      expect(env?.[1], file).toBe(GLIBC_MALLOC_TUNABLES);
    }
    expect(fs.readFileSync(LAUNCHER, 'utf8')).toContain(`GLIBC_TUNABLES=${GLIBC_MALLOC_TUNABLES}}`);
    // `npm run demo` and `npm run pathembed` run as the launcher does, and the slide and pipeline
    // benchmarks measure pathembed as it ships.
    const scripts = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).scripts as Record<
      string,
      string
    >;
    for (const name of ['pathembed', 'demo', 'bench:wsi', 'bench:pipeline'])
      expect(scripts[name], name).toContain(`GLIBC_TUNABLES=\${GLIBC_TUNABLES-${GLIBC_MALLOC_TUNABLES}} `);
  });

  it('withMallocTunables adds the settings only where the environment has none', () => {
    expect(withMallocTunables({ PATH: '/bin' })).toEqual({
      PATH: '/bin',
      GLIBC_TUNABLES: GLIBC_MALLOC_TUNABLES,
    });
    expect(withMallocTunables({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe(
      'glibc.malloc.arena_max=2',
    );
    expect(withMallocTunables({ GLIBC_TUNABLES: '' }).GLIBC_TUNABLES).toBe('');
  });

  it('with the settings, writing 64 MiB of frame-sized buffers takes far fewer page faults', () => {
    // What the settings are for, measured in a child process as a slide read's frames are made:
    // 240 px RGB frames from Buffer.allocUnsafeSlow, each written whole.
    const script =
      'const before = process.resourceUsage().minorPageFault; const kept = [];' +
      'for (let i = 0; i < 388; i++) { const b = Buffer.allocUnsafeSlow(172800); b.fill(i); kept.push(b); }' +
      'process.stdout.write(String(process.resourceUsage().minorPageFault - before));';
    const faults = (env: NodeJS.ProcessEnv) =>
      Number(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }));
    const plain = faults(envWithout('GLIBC_TUNABLES'));
    const tuned = faults(withMallocTunables(envWithout('GLIBC_TUNABLES')));
    // 4 KiB pages: one fault per page of the 64 MiB, about 16,400.
    expect(plain).toBeGreaterThan(15_000);
    const thp = fs.existsSync('/sys/kernel/mm/transparent_hugepage/enabled')
      ? fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8')
      : '';
    if (/\[(madvise|always)\]/.test(thp)) {
      // Huge pages: one fault per 2 MiB where the kernel has them to give.
      expect(tuned).toBeLessThan(plain / 4);
    } else {
      // A kernel without transparent huge pages: the heap gives 4 KiB pages too, and no more of them.
      expect(tuned).toBeLessThan(plain * 1.1);
    }
  });
});
