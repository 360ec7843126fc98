/**
 * The deployment files stay valid: docker-compose.yml parses under `docker-compose config -q`
 * (Debian's docker-compose; no Docker engine needed), and its queue-critical settings are in place.
 * A missing binary fails the test with the package to install, never skips it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { REPO_ROOT } from '../../scripts/dev-services/fixtures.js';

const run = promisify(execFile);
const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.yml');

describe('docker-compose.yml', () => {
  it('is valid for docker-compose config -q', async () => {
    let binary: string;
    try {
      binary = requireBinary('docker-compose');
    } catch {
      throw new Error(
        "Test prerequisite missing: 'docker-compose' is not on PATH. Install it with: apt-get install -y docker-compose",
      );
    }
    const { stdout, stderr } = await run(binary, ['-f', COMPOSE_FILE, 'config', '-q'], {
      cwd: REPO_ROOT,
      env: { ...process.env, PATHEMBED_API_KEYS: 'k', PATHEMBED_TOKEN_KEY: '0'.repeat(64) },
    });
    expect(stdout.trim()).toBe('');
    expect(stderr).not.toMatch(/error/i);
  });

  it('refuses to start without PATHEMBED_TOKEN_KEY, naming it, so a deployment accepts store tokens', async () => {
    const binary = requireBinary('docker-compose');
    const { PATHEMBED_TOKEN_KEY: _unset, ...env } = process.env;
    const failed = await run(binary, ['-f', COMPOSE_FILE, 'config', '-q'], {
      cwd: REPO_ROOT,
      env: { ...env, PATHEMBED_API_KEYS: 'k' },
    }).then(
      () => undefined,
      (err: { stderr?: string }) => err,
    );
    expect(failed?.stderr).toMatch(/PATHEMBED_TOKEN_KEY/);
    // Kubernetes: the key is read from the Secret without `optional`, so a Secret without it stops the pod.
    for (const file of ['api.yaml', 'worker-gpu.yaml']) {
      const manifest = await fs.readFile(path.join(REPO_ROOT, 'deploy', 'k8s', file), 'utf8');
      expect(manifest).toMatch(
        /name: PATHEMBED_TOKEN_KEY\n\s+valueFrom: \{ secretKeyRef: \{ name: pathembed, key: PATHEMBED_TOKEN_KEY, optional: false \} \}/,
      );
    }
  });

  it('runs Redis as a queue needs it and reserves a GPU for the worker', async () => {
    const text = await fs.readFile(COMPOSE_FILE, 'utf8');
    expect(text).toMatch(/--appendonly", "yes"/);
    expect(text).toMatch(/--maxmemory-policy", "noeviction"/);
    expect(text).toMatch(/driver: nvidia/);
    expect(text).toMatch(/profiles: \["cpu"\]/);
    expect(text).toMatch(/orthancteam\/orthanc/);
  });
});
