/**
 * The slides `npm run bench:wsi` reads: the built-in fixtures, or the user's own given with
 * `--slide PATH` (a folder holding one slide's DICOM files, searched recursively, or one file).
 * Owns staging a slide into the benchmark's Orthanc, what the benchmark says about it (size,
 * tiles, transfer syntax), and the grid of patches read from its level 0, which on a large slide
 * is a centred window of at most `--max-patches` patches, so a whole-slide image benchmarks in
 * minutes and every reader reads the same patches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { uploadFile } from '../scripts/dev-services/orthanc.js';
import { transferSyntaxName } from '../src/codecs/transfer-syntax.js';
import type { FrameSource } from '../src/wsi/frame-source.js';
import type { RectPx } from '../src/wsi/region.js';
import type { SlideLevel } from '../src/wsi/slide-level.js';

/** Patches a grid reads at most (`--max-patches`): the fixtures' grids are all smaller. */
export const DEFAULT_MAX_PATCHES = 1000;

/** The 128-byte preamble, then "DICM": how a Part 10 file starts. */
const PART10_MAGIC_OFFSET = 128;
const PART10_MAGIC = 'DICM';
/** The media directory's standard file name (PS3.10). */
const DICOMDIR = 'DICOMDIR';

/** JPEG baseline and extended: the syntaxes the native and WASM libjpeg-turbo decoders read. */
export const JPEG_TRANSFER_SYNTAXES: readonly string[] = ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51'];

export interface UserSlide {
  /** The name rows carry: the path's base name. */
  readonly name: string;
  /** The folder or file given. */
  readonly path: string;
}

/** What the tables say about a slide's level 0. */
export interface SlideFacts {
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileWidthPx: number;
  readonly tileHeightPx: number;
  readonly transferSyntaxUid: string;
}

/** The `--slide PATH` arguments, each checked to exist; their names made unique. */
export function userSlides(args: readonly string[]): UserSlide[] {
  const slides: UserSlide[] = [];
  /** Slides given so far by base name: the second "slide-a" is named "slide-a-2". */
  const seen = new Map<string, number>();
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--slide') continue;
    const given = args[i + 1];
    if (!given || given.startsWith('--'))
      throw new Error('--slide needs a path: a folder of one slide or a DICOM file');
    const full = path.resolve(given);
    if (!fs.existsSync(full)) throw new Error(`--slide ${given}: no such file or folder`);
    const base = path.basename(full).replace(/\.dcm$/i, '');
    const count = (seen.get(base) ?? 0) + 1;
    seen.set(base, count);
    slides.push({ name: count > 1 ? `${base}-${count}` : base, path: full });
  }
  return slides;
}

/** `--max-patches N` (default DEFAULT_MAX_PATCHES). */
export function maxPatchesArg(args: readonly string[]): number {
  const at = args.indexOf('--max-patches');
  if (at < 0) return DEFAULT_MAX_PATCHES;
  const n = Number(args[at + 1]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--max-patches needs a positive integer, got ${args[at + 1]}`);
  return n;
}

function isPart10(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(PART10_MAGIC_OFFSET + PART10_MAGIC.length);
    const read = fs.readSync(fd, head, 0, head.length, 0);
    return read === head.length && head.toString('latin1', PART10_MAGIC_OFFSET) === PART10_MAGIC;
  } finally {
    fs.closeSync(fd);
  }
}

/** One file, or every Part 10 file under a folder but a DICOMDIR, in name order. */
export function dicomFiles(given: string): string[] {
  if (fs.statSync(given).isFile()) return [given];
  const found: string[] = [];
  for (const entry of fs.readdirSync(given, { recursive: true, withFileTypes: true })) {
    // A DICOMDIR indexes files; it is not an image of the slide.
    if (!entry.isFile() || entry.name.toUpperCase() === DICOMDIR) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (isPart10(file)) found.push(file);
  }
  return found.sort();
}

/**
 * Stores a slide's files in the benchmark's Orthanc and returns its series' DICOMweb URL. The
 * files must hold one series: a slide is one series, and a folder of several would leave the
 * benchmark to guess which to read.
 */
export async function uploadSlide(orthancUrl: string, dicomWebUrl: string, given: string): Promise<string> {
  const files = dicomFiles(given);
  if (files.length === 0) throw new Error(`${given} holds no DICOM Part 10 file`);
  const series = new Set<string>();
  let study = '';
  for (const file of files) {
    const id = await uploadFile(orthancUrl, file);
    const tags = (await (await fetch(`${orthancUrl}/instances/${id}/simplified-tags`)).json()) as Record<
      string,
      string
    >;
    series.add(tags.SeriesInstanceUID!);
    study = tags.StudyInstanceUID!;
  }
  if (series.size !== 1) {
    throw new Error(
      `${given} holds ${series.size} series (${[...series].join(', ')}): give the folder of one slide's series`,
    );
  }
  return `${dicomWebUrl}/studies/${study}/series/${[...series][0]}`;
}

/** Level 0's size and tiles, and its transfer syntax as its first frame arrives (QIDO may omit it). */
export async function slideFacts(source: FrameSource, level: SlideLevel): Promise<SlideFacts> {
  const instance = level.instances[0]!;
  const [frame] = await source.fetchFrames(instance.sopInstanceUid, [0]);
  return {
    widthPx: level.widthPx,
    heightPx: level.heightPx,
    tileWidthPx: level.tileWidthPx,
    tileHeightPx: level.tileHeightPx,
    transferSyntaxUid: frame!.transferSyntaxUid,
  };
}

/** "2220 x 2967 px, 240 px JPEG Baseline (Process 1) tiles" */
export function describeSlide(facts: SlideFacts): string {
  const codec = transferSyntaxName(facts.transferSyntaxUid) ?? facts.transferSyntaxUid;
  const tile =
    facts.tileWidthPx === facts.tileHeightPx
      ? `${facts.tileWidthPx}`
      : `${facts.tileWidthPx} x ${facts.tileHeightPx}`;
  return `${facts.widthPx} x ${facts.heightPx} px, ${tile} px ${codec} tiles`;
}

/**
 * The part of level 0 a grid of `patchPx` patches at `stridePx` reads: the whole level when its
 * grid has at most `maxPatches` patches, else the centred window of the most patches up to that
 * (as square as the level allows), where a slide's tissue most often is.
 */
export function gridRegion(
  level: { readonly widthPx: number; readonly heightPx: number },
  patchPx: number,
  stridePx: number,
  maxPatches: number,
): RectPx {
  const across = Math.max(0, Math.floor((level.widthPx - patchPx) / stridePx) + 1);
  const down = Math.max(0, Math.floor((level.heightPx - patchPx) / stridePx) + 1);
  if (across * down <= maxPatches) return { x: 0, y: 0, width: level.widthPx, height: level.heightPx };
  let cols = Math.min(across, Math.max(1, Math.floor(Math.sqrt(maxPatches))));
  const rows = Math.min(down, Math.max(1, Math.floor(maxPatches / cols)));
  cols = Math.min(across, Math.max(1, Math.floor(maxPatches / rows)));
  const width = (cols - 1) * stridePx + patchPx;
  const height = (rows - 1) * stridePx + patchPx;
  // On the stride grid, so the window's patches are patches of the whole level's grid.
  const x = Math.floor((across - cols) / 2) * stridePx;
  const y = Math.floor((down - rows) / 2) * stridePx;
  return { x, y, width, height };
}

/** The patches of the grid inside `region`, in row order. */
export function gridRects(region: RectPx, patchPx: number, stridePx: number): RectPx[] {
  const rects: RectPx[] = [];
  for (let y = region.y; y + patchPx <= region.y + region.height; y += stridePx)
    for (let x = region.x; x + patchPx <= region.x + region.width; x += stridePx)
      rects.push({ x, y, width: patchPx, height: patchPx });
  return rects;
}

/** The region as the grid readers' command line takes it: X,Y,WIDTH,HEIGHT. */
export function regionArg(region: RectPx): string {
  return `${region.x},${region.y},${region.width},${region.height}`;
}
