/**
 * The deployment files stay valid: docker-compose.yml parses under `docker-compose config -q`
 * (Debian's docker-compose; no Docker engine needed), and its queue-critical settings are in place.
 * With the S3 result store configured, API and workers share no results volume: the resolved
 * configuration (`docker-compose config`, read with the PyYAML docker-compose itself runs on) is
 * checked service by service. A missing binary fails the test with the package to install, never skips it.
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
/** The secrets compose requires, as a deployment's .env would give them. */
const SECRETS = {
  PATHEMBED_API_KEYS: 'k',
  PATHEMBED_TOKEN_KEY: '0'.repeat(64),
  PATHEMBED_S3_SECRET_KEY: 's3-secret-key',
};

interface ComposeService {
  environment?: Record<string, string>;
  volumes?: Array<string | { source?: string; target?: string }>;
  profiles?: string[];
  image?: string;
}

/** `docker-compose config` with every profile's services, as JSON. */
async function resolvedCompose(): Promise<{ services: Record<string, ComposeService> }> {
  const binary = requireBinary('docker-compose');
  const { stdout } = await run(
    binary,
    ['-f', COMPOSE_FILE, '--profile', 'cpu', '--profile', 'gpu2', 'config'],
    { cwd: REPO_ROOT, env: { ...process.env, ...SECRETS } },
  );
  // PyYAML: docker-compose (Python) depends on it, so it is there wherever the binary is.
  const child = execFile('python3', [
    '-c',
    'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)',
  ]);
  const out: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(Buffer.from(d)));
  child.stdin?.end(stdout);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`python3 could not read docker-compose config (exit ${code})`);
  return JSON.parse(Buffer.concat(out).toString());
}

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
      env: { ...process.env, ...SECRETS },
    });
    expect(stdout.trim()).toBe('');
    expect(stderr).not.toMatch(/error/i);
  });

  it('refuses to start without PATHEMBED_TOKEN_KEY, naming it, so a deployment accepts store tokens', async () => {
    const binary = requireBinary('docker-compose');
    const { PATHEMBED_TOKEN_KEY: _unset, ...env } = process.env;
    const failed = await run(binary, ['-f', COMPOSE_FILE, 'config', '-q'], {
      cwd: REPO_ROOT,
      env: { ...env, PATHEMBED_API_KEYS: 'k', PATHEMBED_S3_SECRET_KEY: SECRETS.PATHEMBED_S3_SECRET_KEY },
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

  it('shares no results volume between API and workers: both use the S3 store on MinIO', async () => {
    const { services } = await resolvedCompose();
    expect(services.minio?.image).toMatch(/minio\/minio:RELEASE\./);
    const roles = ['api', 'worker', 'worker-gpu1', 'worker-cpu'];
    const mounts = new Map<string, string[]>();
    for (const role of roles) {
      const svc = services[role];
      expect(svc, role).toBeDefined();
      const env = svc?.environment ?? {};
      expect({ role, store: env.PATHEMBED_RESULT_STORE }).toEqual({
        role,
        store: 's3://pathembed-results/v1',
      });
      expect({ role, endpoint: env.PATHEMBED_S3_ENDPOINT }).toEqual({ role, endpoint: 'http://minio:9000' });
      expect(env.AWS_SECRET_ACCESS_KEY).toBe(SECRETS.PATHEMBED_S3_SECRET_KEY);
      const sources = (svc?.volumes ?? []).map(
        (v) => (typeof v === 'string' ? v.split(':')[0] : v.source) ?? '',
      );
      mounts.set(role, sources);
      // Nothing mounted at the results path, and no volume named for results.
      const targets = (svc?.volumes ?? []).map(
        (v) => (typeof v === 'string' ? v.split(':')[1] : v.target) ?? '',
      );
      expect(targets.filter((t) => t.includes('results'))).toEqual([]);
    }
    // The only volume API and workers could share would carry results; there is none in common
    // with the API (workers share the model cache, which holds no results).
    const apiMounts = new Set(mounts.get('api'));
    for (const role of roles.slice(1)) {
      expect({ role, shared: (mounts.get(role) ?? []).filter((m) => apiMounts.has(m)) }).toEqual({
        role,
        shared: [],
      });
    }
  });
});
