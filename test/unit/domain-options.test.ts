/** The translation of the env-keyed Config into the domains' typed options. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  dicomWebOptions,
  engineOptions,
  frameDecoderOptions,
  pipelineOptions,
  slideReadingOptions,
} from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';

describe('domain options from the configuration', () => {
  it("the configuration's default model is the file the models/ tool builds", () => {
    const options = engineOptions(loadConfig({}));
    expect(options.modelPath).toBe(options.defaultModelPath);
  });

  it('carries every value across under its typed name', () => {
    const config = loadConfig({
      PATHEMBED_BATCH_SIZE: '8',
      PATHEMBED_PIXEL_SPACING_UM: '1',
      PATHEMBED_STRIDE_PX: '112',
      PATHEMBED_MIN_TISSUE: '0.25',
      PATHEMBED_FRAME_ERRORS: 'skip',
      PATHEMBED_TISSUE_SPACING_UM: '16',
      PATHEMBED_MAX_PATCHES_PER_JOB: '99',
      PATHEMBED_SR_MAX_PATCHES: '7',
      PATHEMBED_FRAME_CACHE_BYTES: '1024',
      PATHEMBED_DECODE_THREADS: '1',
      PATHEMBED_JPEG_DECODER: 'wasm',
      PATHEMBED_LIBTURBOJPEG: '/opt/turbo/libturbojpeg.so.0',
      PATHEMBED_LEVEL_TOLERANCE: '0.2',
      PATHEMBED_FRAMES_PER_REQUEST: '5',
      PATHEMBED_RETRY_MAX_ATTEMPTS: '2',
    });
    expect(pipelineOptions(config)).toEqual({
      defaults: { pixelSpacingUm: 1, stridePx: 112, minTissue: 0.25, frameErrors: 'skip' },
      batchSize: 8,
      tissueSpacingUm: 16,
      maxPatchesPerJob: 99,
      srMaxPatches: 7,
      iccProfileDir: config.PATHEMBED_ICC_PROFILE_DIR,
    });
    expect(slideReadingOptions(config)).toEqual({
      frameCacheBytes: 1024,
      decodeThreads: 1,
      jpegDecoder: 'wasm',
      libturbojpeg: '/opt/turbo/libturbojpeg.so.0',
      levelTolerance: 0.2,
    });
    expect(frameDecoderOptions(config)).toEqual({
      decodeThreads: 1,
      jpegDecoder: 'wasm',
      libturbojpeg: '/opt/turbo/libturbojpeg.so.0',
      reuseBytes: 1024,
    });
    const wire = dicomWebOptions(config);
    expect(wire.framesPerRequest).toBe(5);
    expect(wire.retry.maxAttempts).toBe(2);
    expect(engineOptions(config).batchSize).toBe(8);
  });

  it('refuses PATHEMBED_AUTH=bearer without a token, naming both variables', () => {
    expect(() => dicomWebOptions(loadConfig({ PATHEMBED_AUTH: 'bearer' }))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    try {
      dicomWebOptions(loadConfig({ PATHEMBED_AUTH: 'bearer' }));
    } catch (err) {
      expect(isPathembedError(err, 'CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toMatch(/PATHEMBED_BEARER_TOKEN/);
    }
  });
});
