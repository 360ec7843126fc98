/**
 * What new memory costs on this machine, printed with the slide benchmarks: a fresh process's
 * first slide is dominated by it where page faults are dear (docs/benchmarks.md "New memory"),
 * and that differs from one VM to the next, even of the same kind.
 *
 * A child node process makes 64 MiB of 240 px RGB frame buffers (Buffer.allocUnsafeSlow, as the
 * FrameBufferPool makes them) and writes each whole, once as node starts by default and once with
 * the GLIBC_TUNABLES pathembed's launchers set (src/process-memory.ts). Reported: minor page
 * faults, and microseconds of the writing per 4 KiB page (the write itself is about 0.1 us of it).
 */
import { execFileSync } from 'node:child_process';
import { withMallocTunables } from '../src/process-memory.js';

const FRAME_BYTES = 240 * 240 * 3;
const FRAMES = Math.ceil((64 * 1024 * 1024) / FRAME_BYTES);
const PAGE_BYTES = 4096;

const PROBE = `
const t0 = process.hrtime.bigint();
const f0 = process.resourceUsage().minorPageFault;
const kept = [];
for (let i = 0; i < ${FRAMES}; i++) { const b = Buffer.allocUnsafeSlow(${FRAME_BYTES}); b.fill(i & 255); kept.push(b); }
const us = Number(process.hrtime.bigint() - t0) / 1000;
process.stdout.write(JSON.stringify({ faults: process.resourceUsage().minorPageFault - f0, us }));
`;

export interface PageFaultCost {
  /** Minor page faults taken writing the buffers. */
  faults: number;
  /** Microseconds of allocating and writing per 4 KiB page of the buffers. */
  usPerPage: number;
}

function probe(env: NodeJS.ProcessEnv): PageFaultCost {
  const out = JSON.parse(execFileSync(process.execPath, ['-e', PROBE], { env, encoding: 'utf8' })) as {
    faults: number;
    us: number;
  };
  return { faults: out.faults, usPerPage: out.us / ((FRAMES * FRAME_BYTES) / PAGE_BYTES) };
}

/** The median of three probes each way, as one line for a benchmark's header. */
export function pageFaultLine(): string {
  const plainEnv = { ...process.env };
  delete plainEnv.GLIBC_TUNABLES;
  const median = (env: NodeJS.ProcessEnv): PageFaultCost => {
    const runs = [probe(env), probe(env), probe(env)].sort((a, b) => a.usPerPage - b.usPerPage);
    return runs[1]!;
  };
  const plain = median(plainEnv);
  const tuned = median(withMallocTunables(plainEnv));
  return (
    `New memory on this machine (64 MiB of 240 px frame buffers, written once): ` +
    `${plain.faults} page faults, ${plain.usPerPage.toFixed(2)} us per 4 KiB page as node starts by default; ` +
    `${tuned.faults} faults, ${tuned.usPerPage.toFixed(2)} us per page with pathembed's GLIBC_TUNABLES.`
  );
}
