/**
 * Opens the slide a CLI command names: `<series>` is a folder of Part 10 files (read locally) or a
 * DICOMweb series reference (URL or Google Healthcare path, read over the wire). Shared by the
 * slide commands (patch, tissue, grid, info) so they accept the same arguments and options:
 *
 * - `--token <token>`: bearer token for the store; default PATHEMBED_BEARER_TOKEN when set, else
 *   the auth PATHEMBED_AUTH selects. Never printed.
 * - `--allow <prefix>` (repeatable): store URL prefixes allowed in addition to
 *   PATHEMBED_ALLOWED_STORES, under the same rules (scheme://host[:port][/path], parsed, never
 *   string-matched), for a one-off command against a store the configuration does not list.
 */
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { decodeThreadCount, FrameDecoder } from '../codecs/index.js';
import type { Config } from '../config.js';
import { bearerAuth, DicomWebClient } from '../dicomweb/index.js';
import { DicomWebFrameSource } from '../wsi/dicomweb-frame-source.js';
import { FrameCache } from '../wsi/frame-cache.js';
import type { FrameSource } from '../wsi/frame-source.js';
import { openLocalFrameSource } from '../wsi/local-frame-source.js';
import { PatchReader } from '../wsi/patch-reader.js';
import { openSlide, type Slide } from '../wsi/slide.js';

export interface SourceArgumentOptions {
  /** Bearer token for the store (--token); default PATHEMBED_BEARER_TOKEN. */
  readonly token?: string;
  /** Store URL prefixes allowed besides PATHEMBED_ALLOWED_STORES (--allow). */
  readonly allow?: readonly string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds `--token` and `--allow` to a command that takes a `<series>` argument. */
export function addSourceOptions(command: Command): Command {
  return command
    .option('--token <token>', 'bearer token for the DICOMweb store (default: PATHEMBED_BEARER_TOKEN)')
    .option(
      '--allow <prefix>',
      'also allow this store URL prefix, scheme://host[:port][/path] (repeatable; adds to PATHEMBED_ALLOWED_STORES)',
      collect,
      [],
    );
}

async function isFolder(arg: string): Promise<boolean> {
  try {
    return (await fs.stat(arg)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The frame source `arg` names: a local folder when one exists at that path, else a DICOMweb
 * series (INVALID_SERIES_REFERENCE when it is neither, UNAPPROVED_DICOM_STORE off the allow-list).
 */
export async function openSourceFromArgument(
  arg: string,
  config: Config,
  options: SourceArgumentOptions = {},
): Promise<FrameSource> {
  if (await isFolder(arg)) return openLocalFrameSource(arg);
  const token = options.token ?? config.PATHEMBED_BEARER_TOKEN;
  const client = DicomWebClient.fromConfig(
    { ...config, PATHEMBED_ALLOWED_STORES: [...config.PATHEMBED_ALLOWED_STORES, ...(options.allow ?? [])] },
    token ? { auth: bearerAuth(token) } : {},
  );
  return new DicomWebFrameSource(client, arg);
}

/** Opens the source and reads the slide model (one metadata request for DICOMweb). */
export async function openSlideFromArgument(
  arg: string,
  config: Config,
  options: SourceArgumentOptions = {},
): Promise<Slide> {
  const source = await openSourceFromArgument(arg, config, options);
  try {
    return await openSlide(source);
  } catch (err) {
    await source.close?.();
    throw err;
  }
}

/** A slide with a decoder, a frame cache and a patch reader over it, configured from `config`. */
export interface SlideReaderSession {
  readonly slide: Slide;
  readonly decoder: FrameDecoder;
  readonly cache: FrameCache;
  readonly reader: PatchReader;
  close(): Promise<void>;
}

export async function openSlideReader(
  arg: string,
  config: Config,
  options: SourceArgumentOptions = {},
): Promise<SlideReaderSession> {
  // The decoder's workers start while the slide's metadata is read.
  const decoder = new FrameDecoder({ decodeThreads: decodeThreadCount(config.PATHEMBED_DECODE_THREADS) });
  decoder.warmUp();
  let slide: Awaited<ReturnType<typeof openSlideFromArgument>>;
  try {
    slide = await openSlideFromArgument(arg, config, options);
  } catch (err) {
    await decoder.close();
    throw err;
  }
  const cache = new FrameCache(slide.source, decoder, { maxBytes: config.PATHEMBED_FRAME_CACHE_BYTES });
  const reader = new PatchReader(cache, { levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE });
  return {
    slide,
    decoder,
    cache,
    reader,
    async close() {
      await slide.close();
      await decoder.close();
    },
  };
}
