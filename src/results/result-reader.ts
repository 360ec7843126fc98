/**
 * Reads JSON results back: `readResult` parses and validates a whole document (tests, small
 * slides), `streamResult` yields the patches one at a time from the line layout the writer uses,
 * so the queue can merge or re-read results of slides with tens of thousands of patches without
 * holding them. Embeddings come back as Float32Array whatever their encoding on disk.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import readline from 'node:readline';
import { PathembedError } from '../errors.js';
import { decodeEmbedding } from './embedding-codec.js';
import {
  RESULT_SCHEMA_VERSION,
  type ResultHeader,
  resultDocumentSchema,
  resultHeaderSchema,
  resultPatchSchema,
  resultSummarySchema,
  type StoredResultSummary,
} from './result-document.js';
import { PATCHES_CLOSE_LINE, PATCHES_OPEN_LINE, type ResultPatch } from './result-writer.js';

/** A patch read back is exactly what the writer was given. */
export type { ResultPatch };

export interface ResultSummary extends Omit<StoredResultSummary, 'meanEmbedding'> {
  readonly meanEmbedding: Float32Array | null;
}

export interface ResultDocument {
  readonly header: ResultHeader;
  readonly patches: ResultPatch[];
  readonly summary: ResultSummary;
}

/** A result opened for streaming: the header at once, the patches as they are read, then the summary. */
export interface ResultStream {
  readonly header: ResultHeader;
  patches(): AsyncIterable<ResultPatch>;
  /** Available once `patches()` has been read to the end. */
  summary(): Promise<ResultSummary>;
}

function invalid(filePath: string, what: string, issues?: unknown): PathembedError {
  return new PathembedError('INVALID_ARGUMENT', `${filePath} is not a pathembed result: ${what}`, {
    filePath,
    ...(issues ? { issues } : {}),
  });
}

function validate<T>(
  schema: {
    safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: unknown[] } };
  },
  value: unknown,
  filePath: string,
  where: string,
): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = (parsed.error.issues as Array<{ path: PropertyKey[]; message: string }>).map(
      (i) => `${[where, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`,
    );
    throw invalid(filePath, issues.slice(0, 5).join('; '), issues);
  }
  return parsed.data;
}

function checkVersion(json: unknown, filePath: string): void {
  const version = (json as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (version !== RESULT_SCHEMA_VERSION) {
    throw invalid(
      filePath,
      `schemaVersion ${JSON.stringify(version)}, this reader knows ${RESULT_SCHEMA_VERSION}`,
    );
  }
}

function decodePatch(stored: unknown, header: ResultHeader, filePath: string, where: string): ResultPatch {
  const p = validate(resultPatchSchema, stored, filePath, where);
  return {
    ...p,
    embedding: decodeEmbedding(
      p.embedding,
      header.embeddingEncoding,
      header.embeddingDimension,
      `${filePath} ${where}`,
    ),
  };
}

function decodeSummary(stored: unknown, header: ResultHeader, filePath: string): ResultSummary {
  const s = validate(resultSummarySchema, stored, filePath, 'summary');
  return {
    ...s,
    meanEmbedding:
      s.meanEmbedding === null
        ? null
        : decodeEmbedding(
            s.meanEmbedding,
            header.embeddingEncoding,
            header.embeddingDimension,
            `${filePath} summary`,
          ),
  };
}

/** Parses and validates a whole result. */
export async function readResult(filePath: string): Promise<ResultDocument> {
  let text: string;
  try {
    text = await readFile(filePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PathembedError('NOT_FOUND', `No result at ${filePath}`, { filePath });
    }
    throw invalid(filePath, (err as Error).message);
  }
  return parseResult(text, filePath);
}

/** Parses and validates a whole result held in memory (read from a result store); `filePath` names it in errors. */
export function parseResult(text: string, filePath: string): ResultDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(filePath, (err as Error).message);
  }
  checkVersion(json, filePath);
  const doc = validate(resultDocumentSchema, json, filePath, '');
  const { patches, summary, ...headerFields } = doc;
  const header = validate(resultHeaderSchema, headerFields, filePath, '');
  return {
    header,
    patches: patches.map((p, i) => decodePatch(p, header, filePath, `patches[${i}]`)),
    summary: decodeSummary(summary, header, filePath),
  };
}

/**
 * Opens a result for streaming. Documents in the writer's line layout stream; any other valid
 * document (re-formatted by a tool) is read whole and then served from memory.
 */
export async function streamResult(filePath: string): Promise<ResultStream> {
  const input = createReadStream(filePath, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const iterator = lines[Symbol.asyncIterator]();
  const close = () => {
    lines.close();
    input.destroy();
  };
  const next = async (): Promise<string | undefined> => {
    const r = await iterator.next();
    return r.done ? undefined : r.value;
  };
  let first: string | undefined;
  let second: string | undefined;
  try {
    first = await next();
    second = await next();
  } catch (err) {
    close();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PathembedError('NOT_FOUND', `No result at ${filePath}`, { filePath });
    }
    throw err;
  }
  if (first === undefined || !first.endsWith(',') || second !== PATCHES_OPEN_LINE) {
    close();
    return fromDocument(await readResult(filePath));
  }
  let headerJson: unknown;
  try {
    headerJson = JSON.parse(`${first.slice(0, -1)}}`);
  } catch {
    close();
    return fromDocument(await readResult(filePath));
  }
  checkVersion(headerJson, filePath);
  const header = validate(resultHeaderSchema, headerJson, filePath, '');
  let summary: ResultSummary | undefined;
  let consumed = false;
  return {
    header,
    async *patches() {
      if (consumed)
        throw new PathembedError('INVALID_ARGUMENT', `${filePath}: patches() can be read only once`);
      consumed = true;
      try {
        let i = 0;
        for (;;) {
          const line = await next();
          if (line === undefined) throw invalid(filePath, 'it ends inside the patch list');
          if (line === PATCHES_CLOSE_LINE) break;
          const text = i === 0 ? line : line.slice(1);
          let stored: unknown;
          try {
            stored = JSON.parse(text);
          } catch (err) {
            throw invalid(filePath, `patch line ${i}: ${(err as Error).message}`);
          }
          yield decodePatch(stored, header, filePath, `patches[${i}]`);
          i++;
        }
        const last = await next();
        if (last === undefined || !last.startsWith('"summary":'))
          throw invalid(filePath, 'no summary after the patches');
        let stored: unknown;
        try {
          stored = (JSON.parse(`{${last}`) as { summary: unknown }).summary;
        } catch (err) {
          throw invalid(filePath, `summary: ${(err as Error).message}`);
        }
        summary = decodeSummary(stored, header, filePath);
      } finally {
        close();
      }
    },
    async summary() {
      if (!summary) {
        throw new PathembedError(
          'INVALID_ARGUMENT',
          `${filePath}: read patches() to the end before summary()`,
        );
      }
      return summary;
    },
  };
}

function fromDocument(doc: ResultDocument): ResultStream {
  return {
    header: doc.header,
    async *patches() {
      yield* doc.patches;
    },
    async summary() {
      return doc.summary;
    },
  };
}
