/**
 * The check every SR the project writes goes through: dicom3tools' dciodvfy reports no error and
 * dcmtk's dsrdump parses it. Returns dsrdump's listing so callers can assert on its content.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';

const run = promisify(execFile);
const DCIODVFY_OUTPUT_BYTES = 256 << 20;
const DSRDUMP_OUTPUT_BYTES = 1 << 30;

export async function validateSrFile(
  file: string,
  dsrdumpOptions: readonly string[] = ['+Pc'],
): Promise<string> {
  // dciodvfy exits non-zero on warnings too; its "Error" lines are what must be absent.
  const r = await run(requireBinary('dciodvfy'), [file], { maxBuffer: DCIODVFY_OUTPUT_BYTES }).catch(
    (e) => e,
  );
  const lines = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n');
  expect(
    lines.filter((l) => l.startsWith('Error')),
    lines.join('\n'),
  ).toEqual([]);
  const { stdout } = await run(requireBinary('dsrdump'), [...dsrdumpOptions, file], {
    maxBuffer: DSRDUMP_OUTPUT_BYTES,
  });
  return stdout;
}
