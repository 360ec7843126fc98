/**
 * Embeddings as they appear in JSON results: either arrays of numbers, each the shortest decimal
 * that parses back to the same float32 (readable, diff-able), or base64 of the little-endian
 * float32 bytes (`float32-base64`, about 2.6x smaller for the 384 components of a patch and
 * exact by construction, for slides with tens of thousands of patches).
 */
import { PathembedError } from '../errors.js';

export const EMBEDDING_ENCODINGS = ['float32-array', 'float32-base64'] as const;
export type EmbeddingEncoding = (typeof EMBEDDING_ENCODINGS)[number];

const FLOAT32_BYTES = 4;
/** A float32 never needs more than 9 significant digits to round-trip; most need 7 to 9. */
const MAX_FLOAT32_DIGITS = 9;
/** Starting below 6 digits rarely helps (model outputs are seldom short decimals) and costs tries. */
const MIN_FLOAT32_DIGITS = 6;

/**
 * The shortest decimal text of a float32 value that reads back to the same float32. JSON.stringify
 * of the widened double would write up to 17 digits (0.10000000149011612 for 0.1f).
 */
export function float32ToDecimal(value: number): string {
  if (!Number.isFinite(value)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `An embedding component is not finite (${value}); JSON cannot hold it`,
      {
        value: String(value),
      },
    );
  }
  const target = Math.fround(value);
  for (let digits = MIN_FLOAT32_DIGITS; digits < MAX_FLOAT32_DIGITS; digits++) {
    const text = target.toPrecision(digits);
    if (Math.fround(Number(text)) === target) return String(Number(text));
  }
  return String(Number(target.toPrecision(MAX_FLOAT32_DIGITS)));
}

/** JSON text of an embedding as a number array (no spaces). */
export function embeddingToJsonArray(embedding: Float32Array): string {
  const parts = new Array<string>(embedding.length);
  for (let i = 0; i < embedding.length; i++) parts[i] = float32ToDecimal(embedding[i]!);
  return `[${parts.join(',')}]`;
}

/** Base64 of the embedding's float32 values, little-endian whatever the machine's byte order. */
export function embeddingToBase64(embedding: Float32Array): string {
  const bytes = new Uint8Array(embedding.length * FLOAT32_BYTES);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < embedding.length; i++) {
    const v = embedding[i]!;
    if (!Number.isFinite(v)) float32ToDecimal(v); // throws the same error as the array encoding
    view.setFloat32(i * FLOAT32_BYTES, v, true);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** The JSON value text (array or quoted string) of an embedding in the given encoding. */
export function encodeEmbedding(embedding: Float32Array, encoding: EmbeddingEncoding): string {
  return encoding === 'float32-array' ? embeddingToJsonArray(embedding) : `"${embeddingToBase64(embedding)}"`;
}

/** Parses an embedding as stored in a result; `where` names it in errors (e.g. "patches[12]"). */
export function decodeEmbedding(
  stored: unknown,
  encoding: EmbeddingEncoding,
  expectedLength: number,
  where: string,
): Float32Array {
  let out: Float32Array;
  if (encoding === 'float32-array') {
    if (!Array.isArray(stored) || !stored.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new PathembedError('INVALID_ARGUMENT', `${where}: embedding is not an array of finite numbers`, {
        where,
      });
    }
    out = Float32Array.from(stored as number[]);
  } else {
    if (typeof stored !== 'string') {
      throw new PathembedError('INVALID_ARGUMENT', `${where}: embedding is not a base64 string`, { where });
    }
    const bytes = Buffer.from(stored, 'base64');
    if (bytes.length % FLOAT32_BYTES !== 0) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `${where}: base64 embedding is ${bytes.length} bytes, not whole float32s`,
        {
          where,
        },
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    out = new Float32Array(bytes.length / FLOAT32_BYTES);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * FLOAT32_BYTES, true);
  }
  if (out.length !== expectedLength) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${where}: embedding has ${out.length} components, the result says ${expectedLength}`,
      { where, length: out.length, expectedLength },
    );
  }
  return out;
}
