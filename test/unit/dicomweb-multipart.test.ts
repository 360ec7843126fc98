import { describe, expect, it } from 'vitest';
import {
  encodeMultipart,
  type MultipartPart,
  multipartBoundary,
  parseContentType,
  readMultipart,
  transferSyntaxOf,
} from '../../src/dicomweb/index.js';
import { PathembedError } from '../../src/errors.js';
import { TransferSyntax } from '../../src/uids.js';

const enc = new TextEncoder();

/** A deterministic pseudo-random byte pattern (so part bodies are not text and contain CR, LF, '-'). */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = x >> 16;
  }
  return out;
}

function concat(...chunks: (string | Uint8Array)[]): Uint8Array {
  const parts = chunks.map((c) => (typeof c === 'string' ? enc.encode(c) : c));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A web ReadableStream delivering `body` in chunks of `chunkBytes` (like a fetch body). */
function streamOf(body: Uint8Array, chunkBytes: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= body.length) {
        controller.close();
        return;
      }
      controller.enqueue(body.slice(at, at + chunkBytes));
      at += chunkBytes;
    },
  });
}

async function readAll(body: Uint8Array, boundary: string, chunkBytes: number): Promise<MultipartPart[]> {
  const parts: MultipartPart[] = [];
  for await (const part of readMultipart(streamOf(body, chunkBytes), boundary)) parts.push(part);
  return parts;
}

const BOUNDARY = 'frame-boundary-42';
const jpegFrame = bytes(3000, 1);
const j2kFrame = bytes(1777, 2);
// A frame holding something that looks like a delimiter but is not one (no CRLF before the dashes).
const trickyFrame = concat('x--frame-boundary-42\r\n', bytes(50, 3), '\r\n-', '\r\n--frame-boundary-4');

const body = concat(
  'This is a preamble, to be ignored.\r\n',
  `--${BOUNDARY}\r\n`,
  `Content-Type: image/jpeg; transfer-syntax=${TransferSyntax.JpegBaseline}\r\n`,
  'Content-Location: http://store/frames/1\r\n\r\n',
  jpegFrame,
  `\r\n--${BOUNDARY}  \r\n`, // transport padding after the delimiter is allowed
  `Content-Type: image/jp2;transfer-syntax="${TransferSyntax.Jpeg2000Lossless}"\r\n\r\n`,
  j2kFrame,
  `\r\n--${BOUNDARY}\r\n`,
  'Content-Type: application/octet-stream\r\n',
  ' ; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n', // a folded header line
  trickyFrame,
  `\r\n--${BOUNDARY}\r\n\r\n`, // a part without headers
  'empty headers',
  `\r\n--${BOUNDARY}--\r\nepilogue, ignored`,
);

describe('readMultipart', () => {
  for (const chunkBytes of [1, 2, 7, 64, 4096, body.length]) {
    it(`yields the same parts with ${chunkBytes}-byte chunks`, async () => {
      const parts = await readAll(body, BOUNDARY, chunkBytes);
      expect(parts.map((p) => p.data.length)).toEqual([3000, 1777, trickyFrame.length, 13]);
      expect(parts[0].data).toEqual(jpegFrame);
      expect(parts[1].data).toEqual(j2kFrame);
      expect(parts[2].data).toEqual(trickyFrame);
      expect(new TextDecoder().decode(parts[3].data)).toBe('empty headers');
      expect(parts.map((p) => p.transferSyntaxUid)).toEqual([
        TransferSyntax.JpegBaseline,
        TransferSyntax.Jpeg2000Lossless,
        TransferSyntax.ExplicitVRLittleEndian,
        undefined,
      ]);
      expect(parts.map((p) => p.mediaType)).toEqual([
        'image/jpeg',
        'image/jp2',
        'application/octet-stream',
        undefined,
      ]);
      expect(parts[0].headers['content-location']).toBe('http://store/frames/1');
      // each part owns an exact buffer (transferable to a worker without dragging neighbours along)
      for (const p of parts) {
        expect(p.data.byteOffset).toBe(0);
        expect(p.data.buffer.byteLength).toBe(p.data.length);
      }
    });
  }

  it('reads a body that starts with the delimiter (no preamble) and has no epilogue', async () => {
    const plain = concat(`--b\r\nContent-Type: a/b\r\n\r\n`, 'one', `\r\n--b\r\n\r\n`, 'two', `\r\n--b--`);
    const parts = await readAll(plain, 'b', 1);
    expect(parts.map((p) => new TextDecoder().decode(p.data))).toEqual(['one', 'two']);
  });

  it('reads what encodeMultipart writes', async () => {
    const { body: encoded, boundary } = encodeMultipart([
      { contentType: 'application/dicom', data: jpegFrame },
      { contentType: 'application/dicom', data: j2kFrame },
    ]);
    const parts = await readAll(encoded, boundary, 5);
    expect(parts.map((p) => p.data)).toEqual([jpegFrame, j2kFrame]);
    expect(parts.map((p) => p.contentType)).toEqual(['application/dicom', 'application/dicom']);
  });

  it('yields parts before the body has ended (streaming)', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const first = concat(`--b\r\n\r\n`, 'first', `\r\n--b\r\n`);
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(first);
        await gate;
        controller.enqueue(concat('\r\n', 'second', '\r\n--b--'));
        controller.close();
      },
    });
    const reader = readMultipart(stream, 'b');
    const one = await reader.next();
    expect(new TextDecoder().decode((one.value as MultipartPart).data)).toBe('first');
    release();
    const two = await reader.next();
    expect(new TextDecoder().decode((two.value as MultipartPart).data)).toBe('second');
    expect((await reader.next()).done).toBe(true);
  });

  async function failure(input: Uint8Array, boundary = BOUNDARY): Promise<PathembedError> {
    try {
      await readAll(input, boundary, 3);
    } catch (err) {
      expect(err).toBeInstanceOf(PathembedError);
      expect((err as PathembedError).code).toBe('DICOMWEB_BAD_RESPONSE');
      return err as PathembedError;
    }
    throw new Error('expected DICOMWEB_BAD_RESPONSE');
  }

  it('reports a truncated body as DICOMWEB_BAD_RESPONSE, saying where it stopped', async () => {
    const cut = body.subarray(0, body.length - 30);
    expect((await failure(cut)).message).toMatch(/Truncated .*inside part 4/);
    const delimiterAfterFirst = Buffer.from(body).indexOf(`\r\n--${BOUNDARY}  `) + `\r\n--${BOUNDARY}`.length;
    expect((await failure(body.subarray(0, delimiterAfterFirst))).message).toMatch(
      /after 1 complete part\(s\)/,
    );
    expect((await failure(enc.encode('no boundary here'))).message).toMatch(/before the first boundary/);
    expect((await failure(new Uint8Array(0))).message).toMatch(/before the first boundary/);
  });

  it('says so when the lines end in LF alone, short or long, and not when binary part data is cut', async () => {
    const lfOnly = `--${BOUNDARY}\nContent-Type: image/jpeg\n\nAAA\n--${BOUNDARY}\nContent-Type: image/jpeg\n\nBBB\n--${BOUNDARY}--\n`;
    expect((await failure(enc.encode(lfOnly))).message).toMatch(
      /lines end in LF alone, where multipart needs CRLF/,
    );
    const longLfOnly = lfOnly.replace('AAA', 'A'.repeat(4000));
    expect((await failure(enc.encode(longLfOnly))).message).toMatch(
      /lines end in LF alone; multipart needs CRLF/,
    );
    // Cut inside a part whose data ends in line feeds: a truncation, whatever bytes the data holds.
    const withLf = concat(
      `--${BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n`,
      new Uint8Array(200).fill(0x0a),
    );
    expect((await failure(withLf)).message).toMatch(/Truncated .*inside part 1/);
  });

  it('refuses garbage after a delimiter and oversized parts', async () => {
    expect((await failure(concat(`--${BOUNDARY}xyz\r\n\r\nbody\r\n--${BOUNDARY}--`))).message).toMatch(
      /unexpected bytes after a boundary/,
    );
    const big = concat(`--b\r\n\r\n`, bytes(100, 4), `\r\n--b--`);
    await expect(async () => {
      for await (const _ of readMultipart(streamOf(big, 10), 'b', { maxPartBytes: 50 })) {
        // drain
      }
    }).rejects.toThrow(/over 50 bytes/);
  });
});

describe('Content-Type parsing', () => {
  it('reads quoted and unquoted boundaries, including parameters with semicolons inside quotes', () => {
    expect(multipartBoundary('multipart/related; type="application/octet-stream"; boundary=abc123')).toBe(
      'abc123',
    );
    expect(multipartBoundary('multipart/related; boundary="with space; and semicolon"')).toBe(
      'with space; and semicolon',
    );
    // Orthanc 1.10: the transfer syntax hides inside the quoted type parameter, the boundary follows it
    const orthanc =
      'multipart/related; type="image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"; boundary=5f050dd1-9f00-4c4e';
    expect(multipartBoundary(orthanc)).toBe('5f050dd1-9f00-4c4e');
    expect(transferSyntaxOf(orthanc)).toBe(TransferSyntax.JpegBaseline);
    expect(parseContentType('Multipart/Related; BOUNDARY=x; Type="a\\"b"')).toEqual({
      mediaType: 'multipart/related',
      params: { boundary: 'x', type: 'a"b' },
    });
  });

  it('refuses a response that is not multipart or has no boundary', () => {
    expect(() => multipartBoundary('application/json')).toThrow(/not multipart\/related/);
    expect(() => multipartBoundary('multipart/related; type="application/octet-stream"')).toThrow(
      /no valid boundary/,
    );
    expect(() => multipartBoundary(null)).toThrow(/no Content-Type/);
    expect(() => multipartBoundary(`multipart/related; boundary=${'x'.repeat(71)}`)).toThrow(
      /no valid boundary/,
    );
  });
});
