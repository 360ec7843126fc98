/**
 * A local stand-in for the part of Cloud Storage's JSON API that @google-cloud/storage uses to
 * download one object: GET /storage/v1/b/{bucket}/o/{object} (metadata) and the same with
 * ?alt=media (the bytes), also under /download/. Used because no Cloud Storage emulator installs
 * from npm or apt and runs offline (Firebase's needs Java and downloads its rules runtime). Each
 * object may require a bearer token; answers use GCS's JSON error shape. Requests are recorded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeObject {
  readonly bytes: Buffer;
  readonly contentType: string;
  /** When set, only `Authorization: Bearer <token>` may read it (401 without, 403 with another). */
  readonly token?: string;
}

export interface GcsFakeServer {
  readonly url: string;
  readonly requests: Array<{ path: string; authorization?: string }>;
  put(bucket: string, name: string, object: FakeObject): void;
  close(): Promise<void>;
}

const OBJECT_PATH = /^\/(?:download\/)?storage\/v1\/b\/([^/]+)\/o\/([^?]+)$/;

function gcsError(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code: status, message, errors: [{ message, reason: 'required' }] } }));
}

export async function startGcsFakeServer(): Promise<GcsFakeServer> {
  const objects = new Map<string, FakeObject>();
  const requests: GcsFakeServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push({ path: url.pathname + url.search, authorization: req.headers.authorization });
    const m = OBJECT_PATH.exec(url.pathname);
    if (req.method !== 'GET' || !m) return gcsError(res, 404, `Not found: ${url.pathname}`);
    const bucket = decodeURIComponent(m[1]);
    const name = decodeURIComponent(m[2]);
    const object = objects.get(`${bucket}/${name}`);
    if (object?.token !== undefined) {
      const auth = req.headers.authorization;
      if (!auth) return gcsError(res, 401, 'Anonymous caller does not have storage.objects.get access.');
      if (auth !== `Bearer ${object.token}`)
        return gcsError(res, 403, 'Caller does not have storage.objects.get access.');
    }
    if (!object) return gcsError(res, 404, `No such object: ${bucket}/${name}`);
    if (url.searchParams.get('alt') === 'media') {
      res.writeHead(200, { 'content-type': object.contentType, 'content-length': object.bytes.length });
      res.end(object.bytes);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'storage#object',
        bucket,
        name,
        size: String(object.bytes.length),
        contentType: object.contentType,
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    put(bucket, name, object) {
      objects.set(`${bucket}/${name}`, object);
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
