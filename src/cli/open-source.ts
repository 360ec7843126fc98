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
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { parseSeriesReference } from '../dicomweb/index.js';
import { slideOpener } from '../domain-options.js';
import type { Logger } from '../log.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import type { FrameSource } from '../wsi/frame-source.js';
import type { OpenSlideReader, SlideAccess, SlideOpener } from '../wsi/slide-opener.js';

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
 * The source `arg` names: a local folder when one exists at that path, else a DICOMweb series
 * reference (INVALID_SERIES_REFERENCE when it is neither).
 */
export async function sourceSpecFromArgument(arg: string): Promise<SlideSourceSpec> {
  if (await isFolder(arg)) return { kind: 'local', folder: path.resolve(arg) };
  const ref = parseSeriesReference(arg);
  return {
    kind: 'dicomweb',
    baseUrl: ref.baseUrl,
    studyUid: ref.studyUid,
    seriesUid: ref.seriesUid,
    ...(ref.instanceUids ? { instanceUids: ref.instanceUids } : {}),
  };
}

/** The command's SlideOpener: the configuration plus `--allow` for this run only. */
export function commandSlideOpener(
  config: Config,
  options: SourceArgumentOptions,
  logger?: Logger,
): SlideOpener {
  return slideOpener(config, {
    ...(logger ? { logger } : {}),
    dicomWeb: { allowedStores: [...config.PATHEMBED_ALLOWED_STORES, ...(options.allow ?? [])] },
  });
}

/** The command's access: `--token`, else PATHEMBED_BEARER_TOKEN, else the auth PATHEMBED_AUTH selects. */
export function commandAccess(config: Config, options: SourceArgumentOptions): SlideAccess {
  const token = options.token ?? config.PATHEMBED_BEARER_TOKEN;
  return token ? { token } : {};
}

/** The frame source `arg` names (UNAPPROVED_DICOM_STORE off the allow-list, on first use). */
export async function openSourceFromArgument(
  arg: string,
  config: Config,
  options: SourceArgumentOptions = {},
): Promise<FrameSource> {
  const spec = await sourceSpecFromArgument(arg);
  return commandSlideOpener(config, options).openSource(spec, commandAccess(config, options));
}

/** The slide `arg` names with a decoder, a frame cache and a patch reader over it. */
export async function openSlideReader(
  arg: string,
  config: Config,
  options: SourceArgumentOptions = {},
): Promise<OpenSlideReader> {
  const spec = await sourceSpecFromArgument(arg);
  return commandSlideOpener(config, options).openSlideReader(spec, commandAccess(config, options));
}
