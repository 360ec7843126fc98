/**
 * ICC colour transforms of patch pixels, Path Foundation's `transform_imaging_to_icc_profile`:
 * from the slide's (or image's) own ICC profile to a named working space, with LittleCMS
 * (lcms-wasm), perceptual intent, as Google's server does through Pillow's ImageCms (also
 * LittleCMS). No colour maths here: this module finds the profiles and hands pixels to LittleCMS.
 *
 * Target profiles, never downloaded, are the ones Google's client and server use, so that vectors
 * match theirs (docs/predict-compat.md measures it): SRGB is the ICC's sRGB v4 preference profile,
 * ROMMRGB the ICC's ISO 22028-2 ROMM RGB and DISPLAYP3 Apple's Display P3, shipped beside this
 * module (icc-profiles/, with their licences). ADOBERGB is Adobe's profile, which Adobe's bundling
 * terms keep out of this repository; Debian's colord-data compatible AdobeRGB1998.icc stands in.
 * PATHEMBED_ICC_PROFILE_DIR overrides any of them as EZ-WSI's `icc_profile_plugin_dir` does, with
 * the same names (`srgb.icc`, `adobergb1998.icc` or `adobergb.icc`, `rommrgb.icc`,
 * `displayp3.icc`, or a folder of that name holding one .icc file), so a deployment can put
 * Adobe's own file there.
 *
 * The slide's profile is the ICC Profile of the first Optical Path item of the level's instance
 * (inline or a BulkDataURI), else a top-level ICC Profile; a slide without one is left as stored,
 * as Google's server does.
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { INTENT_PERCEPTUAL, instantiate, type Lcms, TYPE_RGB_8 } from 'lcms-wasm';
import type { FrameDescription, RgbFrame } from '../codecs/index.js';
import { type DicomJsonDataset, items } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';

export const ICC_PROFILE_NAMES = ['SRGB', 'ADOBERGB', 'ROMMRGB', 'DISPLAYP3'] as const;
export type IccProfileName = (typeof ICC_PROFILE_NAMES)[number];

export function isIccProfileName(name: string): name is IccProfileName {
  return (ICC_PROFILE_NAMES as readonly string[]).includes(name);
}

/** The profiles shipped with pathembed (module doc). */
const BUILTIN_DIR = fileURLToPath(new URL('./icc-profiles/', import.meta.url));
const BUILTIN_FILES: Readonly<Record<IccProfileName, string>> = {
  SRGB: path.join(BUILTIN_DIR, 'sRGB_v4_ICC_preference.icc'),
  ROMMRGB: path.join(BUILTIN_DIR, 'ISO22028-2_ROMM-RGB.icc'),
  DISPLAYP3: path.join(BUILTIN_DIR, 'displayp3.icc'),
  ADOBERGB: '/usr/share/color/icc/colord/AdobeRGB1998.icc',
};
/** Names EZ-WSI's icc_profile_plugin_dir looks for, in its order. */
const PLUGIN_NAMES: Readonly<Record<IccProfileName, readonly string[]>> = {
  SRGB: ['srgb'],
  ADOBERGB: ['adobergb1998', 'adobergb'],
  ROMMRGB: ['rommrgb'],
  DISPLAYP3: ['displayp3'],
};
const ICC_EXTENSION = '.icc';
/** Transforms kept per process (one per slide profile and target in use). */
const MAX_CACHED_TRANSFORMS = 32;
const RGB = 3;

let lcmsReady: Promise<Lcms> | undefined;
function lcms(): Promise<Lcms> {
  lcmsReady ??= instantiate();
  return lcmsReady;
}

function failed(message: string, details: Record<string, unknown> = {}): PathembedError {
  return new PathembedError('ICC_TRANSFORM_FAILED', message, details);
}

/** The override file for `name` in a plugin folder, matched as EZ-WSI matches it; undefined if none. */
async function pluginFile(dir: string, name: IccProfileName): Promise<string | undefined> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw failed(
      `PATHEMBED_ICC_PROFILE_DIR ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); point it at a folder of .icc files or leave it empty for the built-in profiles.`,
      { profileDir: dir },
    );
  }
  for (const wanted of PLUGIN_NAMES[name]) {
    for (const entry of entries) {
      const lower = entry.name.toLowerCase();
      if (entry.isFile() && lower === `${wanted}${ICC_EXTENSION}`) return path.join(dir, entry.name);
      if (entry.isDirectory() && lower === wanted) {
        const inner = (await fs.readdir(path.join(dir, entry.name), { withFileTypes: true })).find(
          (e) => e.isFile() && e.name.toLowerCase().endsWith(ICC_EXTENSION),
        );
        if (inner) return path.join(dir, entry.name, inner.name);
      }
    }
  }
  return undefined;
}

async function readProfile(name: IccProfileName, profileDir: string): Promise<Uint8Array> {
  const file = (profileDir ? await pluginFile(profileDir, name) : undefined) ?? BUILTIN_FILES[name];
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (err) {
    const remedy =
      name === 'ADOBERGB'
        ? "install Debian's colord-data, or put Adobe's AdobeRGB1998.icc in PATHEMBED_ICC_PROFILE_DIR as adobergb1998.icc"
        : `put a ${PLUGIN_NAMES[name][0]}.icc in PATHEMBED_ICC_PROFILE_DIR`;
    throw failed(
      `The ${name} profile ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${remedy}.`,
      { profile: name, file },
    );
  }
}

const targets = new Map<string, Promise<Uint8Array>>();

/** The bytes of a named target profile (module doc); `profileDir` is the override folder or ''. */
export function targetProfile(name: IccProfileName, profileDir: string): Promise<Uint8Array> {
  const key = `${name}:${profileDir}`;
  let found = targets.get(key);
  if (!found) {
    found = readProfile(name, profileDir);
    found.catch(() => targets.delete(key));
    targets.set(key, found);
  }
  return found;
}

/** Where a dataset keeps its ICC profile: inline bytes or a BulkDataURI; undefined when it has none. */
export function iccProfileOf(
  ds: DicomJsonDataset,
): { inline: Uint8Array } | { bulkDataUri: string } | undefined {
  const holders = [...items(ds, Tag.OpticalPathSequence).slice(0, 1), ds];
  for (const holder of holders) {
    const element = holder[Tag.ICCProfile] as { InlineBinary?: string; BulkDataURI?: string } | undefined;
    if (element?.InlineBinary) return { inline: new Uint8Array(Buffer.from(element.InlineBinary, 'base64')) };
    if (element?.BulkDataURI) return { bulkDataUri: element.BulkDataURI };
  }
  return undefined;
}

/** Turns RGB pixels (8 bits, interleaved) into the target space. */
export type RgbTransform = (rgb: Uint8Array) => Uint8Array;

interface Cached {
  readonly handle: number;
  readonly apply: RgbTransform;
}

/** Builds and caches LittleCMS transforms from a source profile to a named target. */
export class IccTransforms {
  readonly #cache = new Map<string, Promise<Cached>>();

  constructor(private readonly profileDir: string) {}

  /** The transform from `source` (ICC bytes) to `target`; ICC_TRANSFORM_FAILED when either cannot be used. */
  async transform(source: Uint8Array, target: IccProfileName): Promise<RgbTransform> {
    const key = `${createHash('sha256').update(source).digest('hex')}:${target}`;
    let cached = this.#cache.get(key);
    if (!cached) {
      cached = this.#build(source, target);
      cached.catch(() => this.#cache.delete(key));
      this.#cache.set(key, cached);
      await this.#evict();
    }
    return (await cached).apply;
  }

  async #build(source: Uint8Array, target: IccProfileName): Promise<Cached> {
    const [cms, targetBytes] = await Promise.all([lcms(), targetProfile(target, this.profileDir)]);
    const input = cms.cmsOpenProfileFromMem(source, source.length);
    if (!input)
      throw failed(`The slide's ICC profile (${source.length} bytes) is not a readable ICC profile`);
    const output = cms.cmsOpenProfileFromMem(targetBytes, targetBytes.length);
    try {
      if (!output) throw failed(`The ${target} profile is not a readable ICC profile`);
      const handle = cms.cmsCreateTransform(input, TYPE_RGB_8, output, TYPE_RGB_8, INTENT_PERCEPTUAL, 0);
      if (!handle) throw failed(`LittleCMS cannot transform from the slide's ICC profile to ${target}`);
      return {
        handle,
        apply: (rgb) => cms.cmsDoTransform(handle, rgb, rgb.length / RGB),
      };
    } finally {
      // The transform holds what it needs; the profiles can go.
      cms.cmsCloseProfile(input);
      if (output) cms.cmsCloseProfile(output);
    }
  }

  async #evict(): Promise<void> {
    while (this.#cache.size > MAX_CACHED_TRANSFORMS) {
      const [oldest, entry] = this.#cache.entries().next().value as [string, Promise<Cached>];
      this.#cache.delete(oldest);
      const [cms, cached] = await Promise.all([lcms(), entry.catch(() => undefined)]);
      if (cached) cms.cmsDeleteTransform(cached.handle);
    }
  }
}

interface RgbDecoder {
  decode(encoded: Uint8Array, transferSyntaxUid: string, desc: FrameDescription): Promise<RgbFrame>;
}

/**
 * A decoder whose frames come out transformed: each stored tile is transformed once, before the
 * frame cache keeps it, so every patch and resize built from it sees target-space pixels.
 */
export function transformingDecoder(decoder: RgbDecoder, transform: RgbTransform): RgbDecoder {
  return {
    async decode(encoded, transferSyntaxUid, desc) {
      const frame = await decoder.decode(encoded, transferSyntaxUid, desc);
      return { ...frame, data: transform(frame.data) };
    },
  };
}

const shared = new Map<string, IccTransforms>();

/** One IccTransforms per profile folder for the process, so transforms are built once. */
export function sharedIccTransforms(profileDir: string): IccTransforms {
  let found = shared.get(profileDir);
  if (!found) {
    found = new IccTransforms(profileDir);
    shared.set(profileDir, found);
  }
  return found;
}
