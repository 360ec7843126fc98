/**
 * The API's error handler on the errors Express and body-parser themselves raise for bad input:
 * a real Express app with the service's own JSON parser settings and error middleware, real
 * requests over loopback. Each must be a 4xx with a registry code and a message that says what to
 * fix, never INTERNAL.
 */
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { errorMiddleware } from '../../src/api/error-middleware.js';
import { parseOrThrow } from '../../src/api/validation.js';
import { SILENT_LOGGER } from '../../src/log.js';

let server: ReturnType<express.Express['listen']>;
let base: string;

beforeAll(async () => {
  const app = express();
  app.use(express.json({ limit: '1kb' }));
  app.get('/v1/jobs/:id', (req, res) => {
    res.json({ id: req.params.id });
  });
  app.post('/v1/jobs', (req, res) => {
    res.json(parseOrThrow(z.object({ sources: z.array(z.string()) }), req.body, 'request body'));
  });
  app.use(errorMiddleware(SILENT_LOGGER));
  await new Promise<void>((resolve) => {
    server = app.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function answer(
  path: string,
  init?: RequestInit,
): Promise<{ status: number; code?: string; message?: string }> {
  const res = await fetch(`${base}${path}`, init);
  const body = (await res.json()) as { error?: { code: string; message: string } };
  return { status: res.status, code: body.error?.code, message: body.error?.message };
}

const post = (
  body: string | Uint8Array,
  headers: Record<string, string> = { 'content-type': 'application/json' },
) => answer('/v1/jobs', { method: 'POST', headers, body });

describe('the API error handler on bad input Express itself refuses', () => {
  it('answers a path id that is not valid percent-encoding with 400, not INTERNAL', async () => {
    expect(await answer('/v1/jobs/%E0%A4%A')).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/not valid percent-encoding/),
    });
  });

  it('answers a body whose Content-Encoding does not match its bytes with 400, not INTERNAL', async () => {
    for (const coding of ['gzip', 'deflate', 'br']) {
      expect(
        await post('notcompressed', { 'content-type': 'application/json', 'content-encoding': coding }),
      ).toMatchObject({
        status: 400,
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/does not decode as its Content-Encoding says/),
      });
    }
    // A body that is what it says is read.
    const gz = zlib.gzipSync(JSON.stringify({ sources: ['a'] }));
    expect(
      (
        await fetch(`${base}/v1/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
          body: gz,
        })
      ).status,
    ).toBe(200);
  });

  it('says a valid JSON text that is not an object must be one, and invalid JSON is invalid', async () => {
    expect(await post('"hello"')).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: 'The request body must be a JSON object; it is a JSON string.',
    });
    expect((await post('null')).message).toBe('The request body must be a JSON object; it is null.');
    expect((await post('{"sources": [')).message).toMatch(/^The request body is not valid JSON/);
  });

  it('says to send JSON when the body came without a JSON Content-Type', async () => {
    expect(await post('{"sources":["a"]}', { 'content-type': 'text/plain' })).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/Content-Type: application\/json/),
    });
  });

  it('states the byte limit of a body that is over it', async () => {
    expect(await post(JSON.stringify({ sources: ['x'.repeat(2000)] }))).toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
      message: expect.stringMatching(/larger than the 1024-byte limit \(PATHEMBED_BODY_LIMIT\)/),
    });
  });
});
