/**
 * A private Orthanc with its DICOMweb plugin on a free loopback port and a temporary store: the
 * real DICOMweb server the integration tests read slides from and write SRs to.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ORTHANC_DICOMWEB_PLUGIN, requireBinary } from './binaries.js';
import { freePort, waitFor } from './ports.js';

export interface OrthancServer {
  /** Orthanc REST root, e.g. http://127.0.0.1:41234 */
  url: string;
  /** DICOMweb base URL, e.g. http://127.0.0.1:41234/dicom-web */
  dicomWebUrl: string;
  stop(): Promise<void>;
}

export async function startOrthanc(): Promise<OrthancServer> {
  const binary = requireBinary('Orthanc');
  await fs.access(ORTHANC_DICOMWEB_PLUGIN).catch(() => {
    throw new Error(
      `Test prerequisite missing: ${ORTHANC_DICOMWEB_PLUGIN}. Install it with: apt-get install -y orthanc-dicomweb`,
    );
  });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-orthanc-'));
  const port = await freePort();
  const config = {
    Name: 'pathembed-test',
    HttpPort: port,
    DicomServerEnabled: false,
    StorageDirectory: path.join(dir, 'db'),
    IndexDirectory: path.join(dir, 'db'),
    Plugins: [ORTHANC_DICOMWEB_PLUGIN],
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpCompressionEnabled: false,
    StableAge: 1,
    DicomWeb: { Enable: true, Root: '/dicom-web/', StudiesMetadata: 'Full', SeriesMetadata: 'Full' },
  };
  const configPath = path.join(dir, 'orthanc.json');
  await fs.writeFile(configPath, JSON.stringify(config));
  const logPath = path.join(dir, 'orthanc.log');
  const log = await fs.open(logPath, 'w');
  const child: ChildProcess = spawn(binary, [configPath], { stdio: ['ignore', log.fd, log.fd] });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (exited) throw new Error('exited');
      return (await fetch(`${url}/system`)).ok;
    }, `Orthanc on ${url} (log: ${logPath})`);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(
      `Orthanc did not start: ${(err as Error).message}\n${await fs.readFile(logPath, 'utf8')}`,
    );
  }
  return {
    url,
    dicomWebUrl: `${url}/dicom-web`,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await log.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Uploads every Part 10 file of a folder through Orthanc's REST API; returns the instance ids. */
export async function uploadFolder(orthancUrl: string, folder: string): Promise<string[]> {
  const ids: string[] = [];
  for (const name of (await fs.readdir(folder)).sort()) {
    const file = path.join(folder, name);
    if (!(await fs.stat(file)).isFile()) continue;
    ids.push(await uploadFile(orthancUrl, file));
  }
  return ids;
}

export async function uploadFile(orthancUrl: string, file: string): Promise<string> {
  const res = await fetch(`${orthancUrl}/instances`, { method: 'POST', body: await fs.readFile(file) });
  if (!res.ok) throw new Error(`Orthanc refused ${file}: HTTP ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { ID: string };
  return body.ID;
}
