/**
 * ICC colour transforms of patch pixels, Path Foundation's `transform_imaging_to_icc_profile`:
 * from the slide's (or image's) own ICC profile to a named working space, with LittleCMS
 * (lcms-wasm), perceptual intent, as Google's server does through Pillow's ImageCms (also
 * LittleCMS). No colour maths here: this module finds the profiles and hands pixels to LittleCMS.
 *
 * Target profiles, never downloaded: SRGB and DISPLAYP3 are libvips' built-in profiles (through
 * sharp); ADOBERGB and ROMMRGB (ProPhoto RGB, the same primaries, white and gamma as ROMM RGB)
 * are the files of Debian's colord-data in PATHEMBED_ICC_PROFILE_DIR. Google bundles other files
 * (sRGB v4 "preference", Adobe's and ISO's own), so values can differ slightly; see
 * docs/predict-compat.md.
 *
 * The slide's profile is the ICC Profile of the first Optical Path item of the level's instance
 * (inline or a BulkDataURI), else a top-level ICC Profile; a slide without one is left as stored,
 * as Google's server does.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { INTENT_PERCEPTUAL, instantiate, type Lcms, TYPE_RGB_8 } from 'lcms-wasm';
import sharp from 'sharp';
import type { FrameDescription, RgbFrame } from '../codecs/index.js';
import { type DicomJsonDataset, items } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';

export const ICC_PROFILE_NAMES = ['SRGB', 'ADOBERGB', 'ROMMRGB', 'DISPLAYP3'] as const;
export type IccProfileName = (typeof ICC_PROFILE_NAMES)[number];

export function isIccProfileName(name: string): name is IccProfileName {
  return (ICC_PROFILE_NAMES as readonly string[]).includes(name);
}

const PROFILE_FILES: Readonly<Partial<Record<IccProfileName, string>>> = {
  ADOBERGB: 'AdobeRGB1998.icc',
  ROMMRGB: 'ProPhotoRGB.icc',
};
const LIBVIPS_PROFILES: Readonly<Partial<Record<IccProfileName, string>>> = { SRGB: 'srgb', DISPLAYP3: 'p3' };
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

/** libvips writes its built-in profile into an image; reading it back gives the profile's bytes. */
async function libvipsProfile(name: string): Promise<Uint8Array> {
  const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000000' } })
    .withIccProfile(name)
    .png()
    .toBuffer();
  const { icc } = await sharp(png).metadata();
  if (!icc) throw failed(`libvips returned no built-in ${name} profile`);
  return new Uint8Array(icc);
}

const targets = new Map<string, Promise<Uint8Array>>();

/** The bytes of a named target profile (module doc). */
export function targetProfile(name: IccProfileName, profileDir: string): Promise<Uint8Array> {
  const key = `${name}:${profileDir}`;
  let found = targets.get(key);
  if (!found) {
    const builtin = LIBVIPS_PROFILES[name];
    const file = PROFILE_FILES[name];
    found = builtin
      ? libvipsProfile(builtin)
      : fs.readFile(path.join(profileDir, file as string)).then(
          (b) => new Uint8Array(b),
          (err: NodeJS.ErrnoException) => {
            throw failed(
              `The ${name} profile ${path.join(profileDir, file as string)} cannot be read (${err.code ?? err.message}). Install Debian's colord-data or point PATHEMBED_ICC_PROFILE_DIR at a folder holding ${file}.`,
              { profile: name, profileDir },
            );
          },
        );
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
