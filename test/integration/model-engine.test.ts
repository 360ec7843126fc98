/**
 * The embedding engine on the real synthetic model with the real ONNX Runtime (CPU): batching,
 * ordering, determinism within and across processes, sensitivity to content and to position, the
 * contract refusals and the errors of bad input. No mocks: every number comes out of ORT.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildVit } from '../../models/build-vit.js';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Config, loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import {
  EMBEDDING_WIDTH,
  EmbeddingEngine,
  manifestPathFor,
  PATCH_BYTES,
  PATCH_SIZE_PX,
} from '../../src/embed/index.js';
import { isPathembedError } from '../../src/errors.js';
import { maxAbsDiff } from '../helpers/compare.js';

const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');
const BLOCK_PX = 16;
const BLOCKS_PER_SIDE = PATCH_SIZE_PX / BLOCK_PX;
const CHANNELS = 3;
/** Batched and single runs take different kernels' blocking; they agree far within this. */
const SAME_TOLERANCE = 1e-4;
const silent = pino({ level: 'silent' });

const baseEnv = {
  PATHEMBED_INTRA_OP_THREADS: '2',
  PATHEMBED_BATCH_SIZE: '8',
  PATHEMBED_EXECUTION_PROVIDER: 'cpu',
  LOG_LEVEL: 'silent',
};

/** A patch of seeded noise over a smooth gradient, so that patches differ in structure. */
function makePatch(seed: number): Uint8Array {
  const patch = new Uint8Array(PATCH_BYTES);
  let state = seed >>> 0;
  for (let i = 0; i < PATCH_BYTES; i++) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    const pixel = Math.floor(i / CHANNELS);
    const gradient = ((pixel % PATCH_SIZE_PX) + Math.floor(pixel / PATCH_SIZE_PX)) * (seed % 2 ? 0.5 : -0.5);
    patch[i] = (128 + gradient + ((state >>> 24) - 128) * 0.5) & 0xff;
  }
  return patch;
}

/** The patch with its 16x16 blocks in reverse order: the same pixels in other positions. */
function reverseBlocks(patch: Uint8Array): Uint8Array {
  const out = new Uint8Array(PATCH_BYTES);
  const blocks = BLOCKS_PER_SIDE * BLOCKS_PER_SIDE;
  for (let b = 0; b < blocks; b++) {
    const src = blocks - 1 - b;
    const [by, bx, sy, sx] = [
      Math.floor(b / BLOCKS_PER_SIDE),
      b % BLOCKS_PER_SIDE,
      Math.floor(src / BLOCKS_PER_SIDE),
      src % BLOCKS_PER_SIDE,
    ];
    for (let y = 0; y < BLOCK_PX; y++) {
      const to = ((by * BLOCK_PX + y) * PATCH_SIZE_PX + bx * BLOCK_PX) * CHANNELS;
      const from = ((sy * BLOCK_PX + y) * PATCH_SIZE_PX + sx * BLOCK_PX) * CHANNELS;
      out.set(patch.subarray(from, from + BLOCK_PX * CHANNELS), to);
    }
  }
  return out;
}

let config: Config;
let engine: EmbeddingEngine;
let dir: string;
const patches = Array.from({ length: 8 }, (_, i) => makePatch(1000 + i));

beforeAll(async () => {
  config = loadConfig(baseEnv);
  await ensureDefaultModel(engineOptions(config), silent);
  engine = await EmbeddingEngine.open(engineOptions(config), silent);
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-engine-'));
});

afterAll(async () => {
  await engine?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('EmbeddingEngine on the synthetic ViT-S/16', () => {
  it('opens the default model on the CPU with its synthetic manifest', () => {
    expect(engine.provider).toBe('cpu');
    expect(engine.patchSize).toBe(224);
    expect(engine.batchSize).toBe(8);
    expect(engine.manifest).toMatchObject({ name: 'path-foundation-synthetic-vit-s16', synthetic: true });
    expect(engine.manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('returns one finite 384-float embedding per patch', async () => {
    const out = await engine.embed(patches.slice(0, 3));
    expect(out).toHaveLength(3);
    for (const e of out) {
      expect(e).toBeInstanceOf(Float32Array);
      expect(e.length).toBe(EMBEDDING_WIDTH);
      expect(e.every(Number.isFinite)).toBe(true);
    }
    expect(await engine.embed([])).toEqual([]);
  });

  it('gives the same embeddings for a batch of eight as for eight batches of one', async () => {
    const batched = await engine.embed(patches);
    for (let i = 0; i < patches.length; i++) {
      const [single] = await engine.embed([patches[i]]);
      expect(maxAbsDiff(batched[i], single)).toBeLessThan(SAME_TOLERANCE);
    }
  });

  it('keeps input order across batches (11 patches = 8 + 3) and across concurrent calls', async () => {
    const eleven = [...patches, ...patches.slice(0, 3).map((p) => reverseBlocks(p))];
    const [together, first, second] = await Promise.all([
      engine.embed(eleven),
      engine.embed(eleven.slice(0, 5)),
      engine.embed(eleven.slice(5)),
    ]);
    expect([...first, ...second]).toHaveLength(11);
    for (const [i, e] of [...first, ...second].entries()) {
      expect(maxAbsDiff(e, together[i])).toBeLessThan(SAME_TOLERANCE);
    }
  });

  it('is deterministic: the same patch gives bit-identical output run after run and in a new session', async () => {
    const a = await engine.embed(patches);
    const b = await engine.embed(patches);
    expect(b).toEqual(a);
    const other = await EmbeddingEngine.open(engineOptions(config), silent);
    try {
      expect(await other.embed(patches)).toEqual(a);
    } finally {
      await other.close();
    }
  });

  it('is deterministic across processes', async () => {
    const input = path.join(dir, 'patches.bin');
    const output = path.join(dir, 'embeddings.bin');
    await writeFile(input, Buffer.concat(patches.slice(0, 2)));
    const script = `
      import { readFileSync, writeFileSync } from 'node:fs';
      import { pino } from 'pino';
      import { loadConfig } from ${JSON.stringify(path.join(PROJECT_ROOT, 'src/config.ts'))};
      import { EmbeddingEngine, PATCH_BYTES } from ${JSON.stringify(path.join(PROJECT_ROOT, 'src/embed/index.ts'))};
      import { engineOptions } from ${JSON.stringify(path.join(PROJECT_ROOT, 'src/domain-options.ts'))};
      const engine = await EmbeddingEngine.open(engineOptions(loadConfig(${JSON.stringify(baseEnv)})), pino({ level: 'silent' }));
      const bytes = readFileSync(${JSON.stringify(input)});
      const patches = [0, 1].map((i) => new Uint8Array(bytes.subarray(i * PATCH_BYTES, (i + 1) * PATCH_BYTES)));
      const out = await engine.embed(patches);
      writeFileSync(${JSON.stringify(output)}, Buffer.concat(out.map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength))));
      await engine.close();
    `;
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: PROJECT_ROOT,
    });
    const raw = await readFile(output);
    const theirs = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const ours = await engine.embed(patches.slice(0, 2));
    expect(theirs.subarray(0, EMBEDDING_WIDTH)).toEqual(ours[0]);
    expect(theirs.subarray(EMBEDDING_WIDTH)).toEqual(ours[1]);
  });

  it('gives different patches different embeddings', async () => {
    const out = await engine.embed(patches);
    for (let i = 1; i < out.length; i++)
      expect(maxAbsDiff(out[0], out[i])).toBeGreaterThan(100 * SAME_TOLERANCE);
  });

  it('sees where content is: shuffling the 16 px blocks changes the embedding (position embeddings work)', async () => {
    const [original, shuffled] = await engine.embed([patches[0], reverseBlocks(patches[0])]);
    // A bag-of-patches model would give equal outputs (within SAME_TOLERANCE).
    expect(maxAbsDiff(original, shuffled)).toBeGreaterThan(5 * SAME_TOLERANCE);
  });

  it('preprocesses pixel/255: an all-white patch differs from an all-black one and both are finite', async () => {
    const [black, white] = await engine.embed([
      new Uint8Array(PATCH_BYTES),
      new Uint8Array(PATCH_BYTES).fill(255),
    ]);
    expect(black.every(Number.isFinite) && white.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(black, white)).toBeGreaterThan(100 * SAME_TOLERANCE);
  });

  it('refuses a patch of the wrong size with INVALID_ARGUMENT naming it', async () => {
    const wrong = new Uint8Array(PATCH_BYTES - CHANNELS);
    await expect(engine.embed([patches[0], wrong])).rejects.toSatisfy(
      (err) =>
        isPathembedError(err, 'INVALID_ARGUMENT') && /patch 1 has 150525 bytes/.test((err as Error).message),
    );
  });

  it('warms up and refuses to embed once closed', async () => {
    const own = await EmbeddingEngine.open(engineOptions(config), silent);
    await own.warmup();
    await own.close();
    await expect(own.embed([patches[0]])).rejects.toSatisfy((err) => isPathembedError(err, 'INTERNAL'));
  });
});

describe('models that are missing or break the contract', () => {
  async function openVariant(name: string, options: Parameters<typeof buildVit>[0]): Promise<unknown> {
    const modelPath = path.join(dir, `${name}.onnx`);
    await writeFile(modelPath, buildVit(options).bytes);
    try {
      await (
        await EmbeddingEngine.open(
          engineOptions(loadConfig({ ...baseEnv, PATHEMBED_MODEL_PATH: modelPath })),
          silent,
        )
      ).close();
      return undefined;
    } catch (err) {
      // A refused model must not get a manifest saying it is a Path Foundation model.
      expect(existsSync(manifestPathFor(modelPath))).toBe(false);
      return err;
    }
  }

  it('refuses a channels-first model, naming its input shape', async () => {
    const err = await openVariant('nchw', { inputLayout: 'NCHW', architecture: { depth: 1 } });
    expect(isPathembedError(err, 'MODEL_CONTRACT_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain(
      "input 'inputs' has shape [N,3,224,224]; the Path Foundation contract needs [N,224,224,3]",
    );
  });

  it('refuses a model with 192-wide embeddings, naming its output shape', async () => {
    const err = await openVariant('narrow', { architecture: { depth: 1, embedDim: 192, heads: 3 } });
    expect(isPathembedError(err, 'MODEL_CONTRACT_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain(
      "output 'output_0' has shape [N,192]; the Path Foundation contract needs [N,384]",
    );
  });

  it('accepts a small model that meets the contract (the refusals are about the contract, not size)', async () => {
    expect(await openVariant('small', { architecture: { depth: 1 } })).toBeUndefined();
  });

  it('refuses a file that is not ONNX', async () => {
    const modelPath = path.join(dir, 'garbage.onnx');
    await writeFile(modelPath, 'not a model');
    await expect(
      EmbeddingEngine.open(
        engineOptions(loadConfig({ ...baseEnv, PATHEMBED_MODEL_PATH: modelPath })),
        silent,
      ),
    ).rejects.toSatisfy((err) => isPathembedError(err, 'MODEL_CONTRACT_MISMATCH'));
  });

  it('answers MODEL_NOT_FOUND for a missing model, telling how to get one, and does not build it elsewhere', async () => {
    const missing = loadConfig({ ...baseEnv, PATHEMBED_MODEL_PATH: path.join(dir, 'missing.onnx') });
    await expect(EmbeddingEngine.open(engineOptions(missing), silent)).rejects.toSatisfy(
      (err) =>
        isPathembedError(err, 'MODEL_NOT_FOUND') && /pathembed model build/.test((err as Error).message),
    );
    await expect(ensureDefaultModel(engineOptions(missing))).rejects.toSatisfy((err) =>
      isPathembedError(err, 'MODEL_NOT_FOUND'),
    );
    expect(existsSync(path.join(dir, 'missing.onnx'))).toBe(false);
  });
});
