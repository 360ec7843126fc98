/**
 * The Path Foundation contract check on session metadata (as onnxruntime-node reports it) and the
 * model manifest beside a model file.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertModelContract,
  contractDifferences,
  deriveManifest,
  loadManifest,
  manifestPathFor,
  readManifest,
  sha256OfFile,
  writeManifest,
} from '../../src/embed/index.js';
import { isPathembedError } from '../../src/errors.js';

type Meta = InferenceSession.ValueMetadata;
const tensor = (name: string, shape: Array<number | string>, type = 'float32'): Meta =>
  ({ name, isTensor: true, type, shape }) as Meta;
const GOOD_IN = tensor('inputs', ['N', 224, 224, 3]);
const GOOD_OUT = tensor('output_0', ['N', 384]);

describe('contractDifferences', () => {
  it('accepts the contract, whatever the batch dimension is called', () => {
    expect(contractDifferences([GOOD_IN], [GOOD_OUT])).toEqual([]);
    expect(
      contractDifferences([tensor('inputs', ['unk__42', 224, 224, 3])], [tensor('output_0', ['', 384])]),
    ).toEqual([]);
  });

  it('accepts a uint8 input (the GPU variant, scaled inside the graph) and says which input it takes', () => {
    const uint8In = tensor('inputs', ['N', 224, 224, 3], 'uint8');
    expect(contractDifferences([uint8In], [GOOD_OUT])).toEqual([]);
    const session = { inputMetadata: [uint8In], outputMetadata: [GOOD_OUT] } as unknown as InferenceSession;
    expect(assertModelContract(session, 'm.onnx')).toBe('uint8');
    const floatSession = {
      inputMetadata: [GOOD_IN],
      outputMetadata: [GOOD_OUT],
    } as unknown as InferenceSession;
    expect(assertModelContract(floatSession, 'm.onnx')).toBe('float32');
  });

  it('names a channels-first input', () => {
    expect(contractDifferences([tensor('inputs', ['N', 3, 224, 224])], [GOOD_OUT])).toEqual([
      "input 'inputs' has shape [N,3,224,224]; the Path Foundation contract needs [N,224,224,3]",
    ]);
  });

  it('names a wrong output width', () => {
    expect(contractDifferences([GOOD_IN], [tensor('output_0', ['N', 768])])).toEqual([
      "output 'output_0' has shape [N,768]; the Path Foundation contract needs [N,384]",
    ]);
  });

  it('refuses a fixed batch size, which could not run batches of other sizes', () => {
    expect(contractDifferences([tensor('inputs', [1, 224, 224, 3])], [GOOD_OUT])).toEqual([
      "input 'inputs' has shape [1,224,224,3]; the Path Foundation contract needs [N,224,224,3]",
    ]);
  });

  it('names wrong element types and names, and lists every difference at once', () => {
    const problems = contractDifferences(
      [tensor('image', ['N', 224, 224, 3], 'float16')],
      [tensor('embedding', ['N', 384], 'float16')],
    );
    expect(problems).toEqual([
      "the model's input is named 'image'; the Path Foundation contract needs 'inputs'",
      "input 'image' has element type float16; the Path Foundation contract needs float32 (pixel/255), or uint8 (pixels, scaled inside the graph)",
      "the model has no output 'output_0' (its outputs: 'embedding'); the Path Foundation contract needs 'output_0'",
      "output 'embedding' has element type float16; the Path Foundation contract needs float32",
    ]);
  });

  it('refuses a second input', () => {
    expect(contractDifferences([GOOD_IN, tensor('mask', ['N'])], [GOOD_OUT])).toEqual([
      "the model has 2 inputs ('inputs', 'mask'); the Path Foundation contract needs exactly one, 'inputs'",
    ]);
  });

  it('assertModelContract throws MODEL_CONTRACT_MISMATCH with the model path and the differences', () => {
    const session = { inputMetadata: [tensor('inputs', ['N', 3, 224, 224])], outputMetadata: [GOOD_OUT] };
    try {
      assertModelContract(session, '/models/x.onnx');
      expect.unreachable();
    } catch (err) {
      expect(isPathembedError(err, 'MODEL_CONTRACT_MISMATCH')).toBe(true);
      expect((err as Error).message).toContain('/models/x.onnx');
      expect((err as Error).message).toContain(
        '[N,3,224,224]; the Path Foundation contract needs [N,224,224,3]',
      );
    }
    expect(() =>
      assertModelContract({ inputMetadata: [GOOD_IN], outputMetadata: [GOOD_OUT] }, 'ok'),
    ).not.toThrow();
  });
});

describe('model manifest', () => {
  let dir: string;
  let modelPath: string;
  const bytes = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-manifest-'));
    modelPath = path.join(dir, 'path-foundation-real.onnx');
    await writeFile(modelPath, bytes);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hashes a file in a stream, equal to hashing it whole', async () => {
    expect(await sha256OfFile(modelPath)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('derives a manifest for a model that has none, and saves it beside the model', async () => {
    expect(await readManifest(modelPath)).toBeUndefined();
    const manifest = await loadManifest(modelPath);
    expect(manifest).toMatchObject({
      name: 'path-foundation-real',
      version: 'unknown',
      file: 'path-foundation-real.onnx',
      synthetic: false,
      inputName: 'inputs',
      inputShape: ['N', 224, 224, 3],
      outputName: 'output_0',
      outputShape: ['N', 384],
      preprocessing: { layout: 'NHWC', channels: 'RGB', scale: '1/255', mean: null, std: null },
    });
    expect(manifest.sha256).toBe(await sha256OfFile(modelPath));
    expect(await readManifest(modelPath)).toEqual(manifest);
    expect(manifestPathFor(modelPath)).toBe(`${modelPath}.manifest.json`);
  });

  it('keeps a manifest that matches the bytes and replaces one that describes other bytes', async () => {
    const sha256 = await sha256OfFile(modelPath);
    const own = { ...deriveManifest(modelPath, sha256), name: 'mine', version: '2.0' };
    await writeManifest(modelPath, own);
    expect(await loadManifest(modelPath)).toEqual(own);

    const stale = { ...own, sha256: 'f'.repeat(64), synthetic: true };
    await writeManifest(modelPath, stale);
    const warnings: unknown[] = [];
    const logger = { warn: (...args: unknown[]) => warnings.push(args), debug: () => {} };
    const loaded = await loadManifest(modelPath, logger as never);
    expect(loaded.sha256).toBe(sha256);
    expect(loaded.synthetic).toBe(false);
    expect(warnings).toHaveLength(1);
  });

  it('refuses a malformed manifest with CONFIG_INVALID naming the field', async () => {
    await writeFile(manifestPathFor(modelPath), JSON.stringify({ name: 'x', sha256: 'nope' }));
    await expect(readManifest(modelPath)).rejects.toSatisfy(
      (err) => isPathembedError(err, 'CONFIG_INVALID') && /sha256/.test((err as Error).message),
    );
    await writeFile(manifestPathFor(modelPath), '{not json');
    await expect(readManifest(modelPath)).rejects.toSatisfy((err) => isPathembedError(err, 'CONFIG_INVALID'));
  });
});
