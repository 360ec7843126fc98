/**
 * Locates the external programs the tests drive, failing at once with the Debian package to
 * install when one is missing: a missing tool must never turn into a silently skipped test.
 */
import { execFileSync } from 'node:child_process';

const PACKAGES: Record<string, string> = {
  Orthanc: 'orthanc orthanc-dicomweb',
  OrthancWSIDicomizer: 'orthanc-wsi',
  'redis-server': 'redis-server',
  dcmdump: 'dcmtk',
  dsrdump: 'dcmtk',
  dcmj2pnm: 'dcmtk',
  dcmdjpeg: 'dcmtk',
  dcmcjpeg: 'dcmtk',
  dcmcjpls: 'dcmtk',
  dciodvfy: 'dicom3tools',
  vips: 'libvips-tools',
};

export function requireBinary(name: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    const pkg = PACKAGES[name] ?? name;
    throw new Error(
      `Test prerequisite missing: '${name}' is not on PATH. Install it with: apt-get install -y ${pkg}`,
    );
  }
}

export const ORTHANC_DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
