/**
 * multipart/related (RFC 2046 §5.1, RFC 2387) for DICOMweb: a streaming reader that yields each
 * part as soon as its closing delimiter arrives, holding only the part being read (never the whole
 * body), and the writer STOW-RS uses. Also Content-Type parsing, since DICOMweb puts the transfer
 * syntax of each frame in its part's Content-Type (`transfer-syntax=...`), and stores differ in
 * how they quote the boundary and nest parameters inside `type="..."`.
 */
import crypto from 'node:crypto';
import { PathembedError } from '../errors.js';

export interface MultipartPart {
  /** Part headers, names lower-cased; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** The part's Content-Type value as sent, or undefined when it had none. */
  readonly contentType: string | undefined;
  /** The media type alone, lower-cased ("image/jpeg"), or undefined. */
  readonly mediaType: string | undefined;
  /** The `transfer-syntax` parameter of the part's Content-Type, when present. */
  readonly transferSyntaxUid: string | undefined;
  /** The part body, in its own exactly-sized ArrayBuffer (byteOffset 0), safe to transfer to a worker. */
  readonly data: Uint8Array;
}

export interface ParsedContentType {
  /** Lower-cased type/subtype. */
  readonly mediaType: string;
  /** Parameters with lower-cased names and unquoted values. */
  readonly params: Readonly<Record<string, string>>;
}

export interface MultipartReadOptions {
  /** Largest part body accepted (guards memory against a runaway store). */
  readonly maxPartBytes?: number;
  /** Largest header block of one part. */
  readonly maxHeaderBytes?: number;
  /** What is being read, for messages ("GET .../frames/1,2"). */
  readonly context?: string;
}

/** Frames of WSI levels are kilobytes to a few megabytes; anything near this is a broken response. */
export const DEFAULT_MAX_PART_BYTES = 512 * 1024 * 1024;
/** Part headers are a few lines (Content-Type, Content-Location, Content-Length). */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** RFC 2046 §5.1.1: a boundary is 1 to 70 characters. */
const MAX_BOUNDARY_LENGTH = 70;
/** Transport padding after a delimiter (RFC 2046 LWSP) is a few spaces at most. */
const MAX_DELIMITER_LINE_PADDING = 1024;

const CRLF = Buffer.from('\r\n');
const LF = 0x0a;
const HEADER_END = Buffer.from('\r\n\r\n');
const DASH_DASH = 0x2d2d;
const SPACE = 0x20;
const TAB = 0x09;

function badResponse(message: string, details: Record<string, unknown> = {}): PathembedError {
  return new PathembedError('DICOMWEB_BAD_RESPONSE', message, details);
}

/** Parses `type/subtype; name=value; name="quoted; value"` (RFC 9110 §8.3.1, quoted-pair escapes). */
export function parseContentType(value: string): ParsedContentType {
  let i = value.indexOf(';');
  const mediaType = (i === -1 ? value : value.slice(0, i)).trim().toLowerCase();
  const params: Record<string, string> = {};
  if (i === -1) return { mediaType, params };
  while (i < value.length) {
    while (i < value.length && (value[i] === ';' || value[i] === ' ' || value[i] === '\t')) i++;
    const eq = value.indexOf('=', i);
    const semi = value.indexOf(';', i);
    if (eq === -1 || (semi !== -1 && semi < eq)) {
      // a parameter without a value: skip it
      i = semi === -1 ? value.length : semi;
      continue;
    }
    const name = value.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (value[i] === ' ' || value[i] === '\t') i++;
    let paramValue = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length && value[i] !== '"') {
        if (value[i] === '\\' && i + 1 < value.length) i++;
        paramValue += value[i];
        i++;
      }
      i++; // closing quote
      const next = value.indexOf(';', i);
      i = next === -1 ? value.length : next;
    } else {
      const end = value.indexOf(';', i);
      paramValue = value.slice(i, end === -1 ? value.length : end).trim();
      i = end === -1 ? value.length : end;
    }
    if (name !== '' && !(name in params)) params[name] = paramValue;
  }
  return { mediaType, params };
}

/**
 * The transfer syntax a Content-Type declares: its own `transfer-syntax` parameter, or the one
 * nested in `type="image/jpeg; transfer-syntax=..."` (how Orthanc labels the whole response).
 */
export function transferSyntaxOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const parsed = parseContentType(contentType);
  const own = parsed.params['transfer-syntax'];
  if (own !== undefined && own !== '') return own;
  const type = parsed.params.type;
  if (type?.includes('transfer-syntax')) {
    const nested = parseContentType(type).params['transfer-syntax'];
    if (nested !== undefined && nested !== '') return nested;
  }
  return undefined;
}

/** The boundary of a multipart Content-Type; throws DICOMWEB_BAD_RESPONSE when there is none. */
export function multipartBoundary(contentType: string | null | undefined, context = 'response'): string {
  if (contentType === null || contentType === undefined) {
    throw badResponse(
      `The store's ${context} has no Content-Type; expected multipart/related with a boundary.`,
    );
  }
  const parsed = parseContentType(contentType);
  if (!parsed.mediaType.startsWith('multipart/')) {
    throw badResponse(`The store's ${context} is ${parsed.mediaType}, not multipart/related.`, {
      contentType,
    });
  }
  const boundary = parsed.params.boundary;
  if (boundary === undefined || boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw badResponse(
      `The store's ${context} Content-Type has no valid boundary parameter (1-${MAX_BOUNDARY_LENGTH} characters): ${contentType}`,
      { contentType },
    );
  }
  return boundary;
}

function parseHeaderBlock(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  const lines: string[] = [];
  for (const line of block.toString('latin1').split('\r\n')) {
    // RFC 5322 folding: a line starting with white space continues the previous one.
    if ((line.startsWith(' ') || line.startsWith('\t')) && lines.length > 0) {
      lines[lines.length - 1] += ` ${line.trim()}`;
    } else if (line !== '') {
      lines.push(line);
    }
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}

/**
 * `chunks` (`length` bytes in all) joined into one exact allocation of their own: decoders (and
 * transfers to worker threads) get a clean buffer rather than a slice of Node's shared pool or of
 * a network chunk.
 */
export function joinOwned(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const data = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    data.set(c, offset);
    offset += c.length;
  }
  return data;
}

function makePart(headers: Record<string, string>, chunks: Buffer[], length: number): MultipartPart {
  const data = joinOwned(chunks, length);
  const contentType = headers['content-type'];
  return {
    headers,
    contentType,
    mediaType: contentType === undefined ? undefined : parseContentType(contentType).mediaType,
    transferSyntaxUid: transferSyntaxOf(contentType),
    data,
  };
}

type State = 'preamble' | 'delimiter-line' | 'headers' | 'body' | 'epilogue';

async function* chunksOf(
  body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (typeof (body as ReadableStream<Uint8Array>).getReader === 'function') {
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    let done = false;
    try {
      while (true) {
        const next = await reader.read();
        if (next.done) {
          done = true;
          return;
        }
        yield next.value;
      }
    } finally {
      // Stopping early (closing delimiter seen, an error, or the consumer broke off) frees the connection.
      if (!done) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  } else {
    yield* body as AsyncIterable<Uint8Array>;
  }
}

/**
 * Reads a multipart/related body part by part. Delimiters may be split across chunks anywhere;
 * preamble and epilogue are skipped; the body must end with the closing delimiter, otherwise
 * DICOMWEB_BAD_RESPONSE (a dropped connection shows up as a network error from the stream itself).
 */
export async function* readMultipart(
  body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  boundary: string,
  options: MultipartReadOptions = {},
): AsyncGenerator<MultipartPart> {
  const maxPartBytes = options.maxPartBytes ?? DEFAULT_MAX_PART_BYTES;
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const context = options.context ?? 'multipart response';
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  // A virtual CRLF before the body lets a first delimiter at byte 0 match like every other one.
  let pending: Buffer = Buffer.from(CRLF);
  let state = 'preamble' as State;
  let partHeaders: Record<string, string> = {};
  let partChunks: Buffer[] = [];
  let partBytes = 0;
  let partsRead = 0;

  /** Advances the state machine over `pending`; returns false when it needs more bytes. */
  const step = (): MultipartPart | boolean => {
    switch (state) {
      case 'preamble': {
        const at = pending.indexOf(delimiter);
        if (at === -1) {
          pending = pending.subarray(Math.max(0, pending.length - (delimiter.length - 1)));
          return false;
        }
        pending = pending.subarray(at + delimiter.length);
        state = 'delimiter-line';
        return true;
      }
      case 'delimiter-line': {
        if (pending.length < 2) return false;
        if (pending.readUInt16BE(0) === DASH_DASH) {
          state = 'epilogue';
          return true;
        }
        const eol = pending.indexOf(CRLF);
        if (eol === -1) {
          if (pending.length > MAX_DELIMITER_LINE_PADDING) {
            throw badResponse(
              `Malformed ${context}: a boundary line is not followed by CRLF${endsInBareLf(pending) ? ' (its lines end in LF alone; multipart needs CRLF)' : ''}.`,
            );
          }
          return false;
        }
        for (let i = 0; i < eol; i++) {
          if (pending[i] !== SPACE && pending[i] !== TAB) {
            throw badResponse(
              `Malformed ${context}: unexpected bytes after a boundary delimiter (is the boundary in the Content-Type right?).`,
            );
          }
        }
        pending = pending.subarray(eol + CRLF.length);
        state = 'headers';
        return true;
      }
      case 'headers': {
        if (pending.length < CRLF.length) return false;
        if (pending[0] === CRLF[0] && pending[1] === CRLF[1]) {
          partHeaders = {};
          pending = pending.subarray(CRLF.length);
        } else {
          const end = pending.indexOf(HEADER_END);
          if (end === -1) {
            if (pending.length > maxHeaderBytes) {
              throw badResponse(
                `Malformed ${context}: part ${partsRead + 1} has over ${maxHeaderBytes} bytes of headers.`,
              );
            }
            return false;
          }
          partHeaders = parseHeaderBlock(pending.subarray(0, end));
          pending = pending.subarray(end + HEADER_END.length);
        }
        partChunks = [];
        partBytes = 0;
        state = 'body';
        return true;
      }
      case 'body': {
        const at = pending.indexOf(delimiter);
        // Bytes that cannot start a delimiter are part data for sure; keep only a possible prefix.
        const safe = at === -1 ? pending.length - (delimiter.length - 1) : at;
        if (safe > 0) {
          partChunks.push(pending.subarray(0, safe));
          partBytes += safe;
          if (partBytes > maxPartBytes) {
            throw badResponse(
              `The ${context} has a part over ${maxPartBytes} bytes; refusing to hold it in memory.`,
            );
          }
          pending = pending.subarray(safe);
        }
        if (at === -1) return false;
        const part = makePart(partHeaders, partChunks, partBytes);
        partChunks = [];
        partsRead++;
        pending = pending.subarray(delimiter.length);
        state = 'delimiter-line';
        return part;
      }
      case 'epilogue':
        return false;
    }
  };

  for await (const chunk of chunksOf(body)) {
    if (chunk.length === 0) continue;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    pending = pending.length === 0 ? bytes : Buffer.concat([pending, bytes]);
    while (true) {
      const result = step();
      if (result === false) break;
      if (result !== true) yield result;
    }
    if (state === 'epilogue') return;
  }
  const where =
    state === 'preamble'
      ? 'before the first boundary'
      : state === 'delimiter-line'
        ? `after ${partsRead} complete part(s)`
        : `inside part ${partsRead + 1}`;
  // A body whose lines end in LF alone never shows a CRLF delimiter, so it reads as cut short; say
  // why. Only where text is expected (a boundary line, part headers): part data may hold any bytes.
  const bareLf = (state === 'delimiter-line' || state === 'headers') && endsInBareLf(pending);
  throw badResponse(
    bareLf
      ? `Malformed ${context}: its lines end in LF alone, where multipart needs CRLF, so no part ends (${partsRead} read).`
      : `Truncated ${context}: the body ended ${where}, without the closing boundary.`,
    { partsRead },
  );
}

/** Whether `bytes` holds line feeds but not one CRLF: lines ended the Unix way. */
function endsInBareLf(bytes: Buffer): boolean {
  return bytes.includes(LF) && !bytes.includes(CRLF);
}

/** A fresh random boundary (RFC 2046 allows up to 70 characters; a UUID never occurs in DICOM data by chance). */
export function newBoundary(): string {
  return `pathembed-${crypto.randomUUID()}`;
}

/** Encodes parts as one multipart/related body (for STOW-RS). */
export function encodeMultipart(
  parts: ReadonlyArray<{ readonly contentType: string; readonly data: Uint8Array }>,
  boundary: string = newBoundary(),
): { body: Uint8Array; boundary: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${part.contentType}\r\n\r\n`, 'latin1'));
    chunks.push(Buffer.from(part.data.buffer, part.data.byteOffset, part.data.byteLength));
    chunks.push(CRLF);
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  const joined = Buffer.concat(chunks);
  return { body: new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength), boundary };
}
