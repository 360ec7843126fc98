import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type DicomWebClient, parseSeriesReference } from '../../src/dicomweb/index.js';
import { dicomWebClient } from '../../src/domain-options.js';
import { PathembedError } from '../../src/errors.js';
import { SopClass, TransferSyntax } from '../../src/uids.js';
import { DicomWebFrameSource } from '../../src/wsi/dicomweb-frame-source.js';
import { fixture, services } from '../helpers/services.js';

// dcmjs ships no types; the slice these tests use.
interface DcmjsDict {
  meta: Record<string, { vr: string; Value?: unknown[] }>;
  dict: Record<string, { vr: string; Value?: unknown[] }>;
  write(): ArrayBuffer;
}
const dcmjs = createRequire(import.meta.url)('dcmjs') as {
  data: { DicomMessage: { readFile(buffer: ArrayBuffer): DcmjsDict } };
  log?: { setLevel?(level: string): void };
};
dcmjs.log?.setLevel?.('error');

interface Part10 {
  file: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  frames: Uint8Array[];
  dicom: DcmjsDict;
}

async function readPart10(file: string): Promise<Part10> {
  const buf = await fs.readFile(file);
  const dicom = dcmjs.data.DicomMessage.readFile(
    buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
  );
  const pixelData = (dicom.dict['7FE00010']?.Value ?? []) as ArrayBuffer[];
  return {
    file,
    sopInstanceUid: String(dicom.dict['00080018'].Value?.[0]),
    transferSyntaxUid: String(dicom.meta['00020010'].Value?.[0]),
    frames: pixelData.map((f) => new Uint8Array(f)),
    dicom,
  };
}

async function readFixture(name: string): Promise<Part10[]> {
  const dir = fixture(name).dir;
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.dcm')).sort();
  return Promise.all(files.map((f) => readPart10(path.join(dir, f))));
}

/** A fresh client per test, so its stats count that test's requests only. */
function client(env: Record<string, string> = {}): DicomWebClient {
  return dicomWebClient(loadConfig(env));
}

async function failure(promise: Promise<unknown>): Promise<PathembedError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PathembedError);
    return err as PathembedError;
  }
  throw new Error('expected the call to fail');
}

const TILE_TAGS = ['00280008', '00280010', '00280011', '00480006', '00480007'];
const CMU_LEVEL0_FRAMES = 130;

describe('DicomWebClient against Orthanc', () => {
  let cmu: Part10[];
  let level0: Part10;

  beforeAll(async () => {
    cmu = await readFixture('cmu-jpeg');
    level0 = cmu.find((p) => p.frames.length === CMU_LEVEL0_FRAMES)!;
    expect(level0).toBeDefined();
  });

  it('QIDO-RS finds the instances of the series with the WSI attributes', async () => {
    const instances = await client().searchInstances(fixture('cmu-jpeg').seriesUrl);
    expect(instances.length).toBe(fixture('cmu-jpeg').instanceCount);
    expect(instances.map((i) => i['00080018'].Value?.[0]).sort()).toEqual(
      cmu.map((p) => p.sopInstanceUid).sort(),
    );
    for (const instance of instances) {
      expect(instance['00080016'].Value?.[0]).toBe(SopClass.VLWholeSlideMicroscopyImage);
      for (const tag of TILE_TAGS) expect(instance[tag]?.Value?.[0], tag).toBeDefined();
    }
    const level0Instance = instances.find((i) => i['00080018'].Value?.[0] === level0.sopInstanceUid)!;
    expect(Number(level0Instance['00280008'].Value?.[0])).toBe(CMU_LEVEL0_FRAMES);
    expect(level0Instance['00480006'].Value?.[0]).toBe(2220);
    expect(level0Instance['00480007'].Value?.[0]).toBe(2967);
  });

  it('WADO-RS metadata has the WSI tags, and keeps only the instances a reference names', async () => {
    const c = client();
    const all = await c.seriesMetadata(fixture('cmu-jpeg').seriesUrl);
    expect(all.length).toBe(cmu.length);
    for (const ds of all) {
      for (const tag of TILE_TAGS) expect(ds[tag]?.Value?.[0], tag).toBeDefined();
      expect(ds['52009229']?.vr).toBe('SQ'); // SharedFunctionalGroupsSequence: pixel spacing lives there
    }
    const ref = {
      ...parseSeriesReference(fixture('cmu-jpeg').seriesUrl),
      instanceUids: [level0.sopInstanceUid],
    };
    const one = await c.seriesMetadata(ref);
    expect(one.map((d) => d['00080018'].Value?.[0])).toEqual([level0.sopInstanceUid]);
    const missing = await failure(c.seriesMetadata({ ...ref, instanceUids: ['1.2.3.4'] }));
    expect(missing.code).toBe('DICOMWEB_NOT_FOUND');
    expect(missing.message).toContain('1.2.3.4');
  });

  it('fetches all 130 level-0 frames in 5 requests of at most 32, byte for byte as in the Part 10 file', async () => {
    const c = client({ PATHEMBED_FRAMES_PER_REQUEST: '32' });
    const source = new DicomWebFrameSource(c, fixture('cmu-jpeg').seriesUrl);
    const indices = Array.from({ length: CMU_LEVEL0_FRAMES }, (_, i) => i);
    const frames = await source.fetchFrames(level0.sopInstanceUid, indices);
    expect(frames.length).toBe(CMU_LEVEL0_FRAMES);
    for (const [k, frame] of frames.entries()) {
      expect(frame.transferSyntaxUid).toBe(TransferSyntax.JpegBaseline);
      // Orthanc sends each frame's fragment as stored, its padding byte to even length included.
      expect(Buffer.from(frame.data).equals(Buffer.from(level0.frames[k])), `frame index ${k}`).toBe(true);
    }
    const totalBytes = level0.frames.reduce((n, f) => n + f.length, 0);
    expect(source.stats).toEqual({ requests: 5, frames: CMU_LEVEL0_FRAMES, bytes: totalBytes });
    expect(c.stats).toEqual({ requests: 5, retries: 0, frames: CMU_LEVEL0_FRAMES, bytes: totalBytes });
    expect(source.description).toBe(fixture('cmu-jpeg').seriesUrl);
  });

  it('returns frames in the order asked, repeats included, in one request per batch of distinct frames', async () => {
    const c = client({ PATHEMBED_FRAMES_PER_REQUEST: '2' });
    const asked = [129, 0, 5, 0, 129, 64];
    const frames = await c.fetchFrames(fixture('cmu-jpeg').seriesUrl, level0.sopInstanceUid, asked);
    for (const [k, index] of asked.entries())
      expect(Buffer.from(frames[k].data).equals(Buffer.from(level0.frames[index]))).toBe(true);
    expect(c.stats.requests).toBe(2); // 4 distinct frames, 2 per request
  });

  it('reads the transfer syntax of each frame from its part: JPEG baseline and JPEG 2000 as stored', async () => {
    const c = client();
    for (const name of ['cmu-jpeg', 'cmu-jpeg2000']) {
      const files = await readFixture(name);
      for (const file of files) {
        const frames = await c.fetchFrames(fixture(name).seriesUrl, file.sopInstanceUid, [
          0,
          file.frames.length - 1,
        ]);
        expect(frames.map((f) => f.transferSyntaxUid)).toEqual([
          file.transferSyntaxUid,
          file.transferSyntaxUid,
        ]);
        expect(Buffer.from(frames[1].data).equals(Buffer.from(file.frames[file.frames.length - 1]))).toBe(
          true,
        );
      }
      const expected = name === 'cmu-jpeg' ? TransferSyntax.JpegBaseline : TransferSyntax.Jpeg2000Lossless;
      expect(files.every((f) => f.transferSyntaxUid === expected)).toBe(true);
    }
  });

  it('maps a wrong series, instance or frame to typed errors with the URL and the store message', async () => {
    const c = client();
    const f = fixture('cmu-jpeg');
    const wrongSeries = { baseUrl: services().dicomWebUrl, studyUid: f.studyUid, seriesUid: '1.2.3.999' };
    const notFound = await failure(c.seriesMetadata(wrongSeries));
    expect(notFound.code).toBe('DICOMWEB_NOT_FOUND');
    expect(notFound.message).toContain('/series/1.2.3.999/metadata');
    expect(notFound.message).toContain('HTTP 404');
    expect(notFound.message).toMatch(/Check the study and series UIDs/);
    // QIDO answers an unknown series with an empty list; the client reports it as not found
    expect((await failure(c.searchInstances(wrongSeries))).code).toBe('DICOMWEB_NOT_FOUND');
    expect((await failure(c.fetchFrames(f.seriesUrl, '1.2.3.999', [0]))).code).toBe('DICOMWEB_NOT_FOUND');
    const pastEnd = await failure(c.fetchFrames(f.seriesUrl, level0.sopInstanceUid, [CMU_LEVEL0_FRAMES]));
    expect(pastEnd.code).toBe('DICOMWEB_HTTP_ERROR');
    expect(pastEnd.message).toContain(`/frames/${CMU_LEVEL0_FRAMES + 1}`);
    expect(c.stats.retries).toBe(0);
    const badIndex = await failure(c.fetchFrames(f.seriesUrl, level0.sopInstanceUid, [-1]));
    expect(badIndex.code).toBe('INVALID_ARGUMENT');
  });

  it('refuses a store that is not on the allow-list before sending anything', async () => {
    const c = client({ PATHEMBED_ALLOWED_STORES: 'http://localhost:1' });
    const err = await failure(c.searchInstances(fixture('cmu-jpeg').seriesUrl));
    expect(err.code).toBe('UNAPPROVED_DICOM_STORE');
    expect(c.stats.requests).toBe(0);
  });

  it('stores a DICOM object with STOW-RS, after which QIDO-RS finds it', async () => {
    const source = await readPart10(cmu[cmu.length - 1].file);
    const uid = () => `2.25.${BigInt(`0x${crypto.randomUUID().replace(/-/g, '')}`).toString()}`;
    const [studyUid, seriesUid, sopInstanceUid] = [uid(), uid(), uid()];
    // A new study and series, so the fixture series keeps its instance count for other tests.
    source.dicom.dict['0020000D'].Value = [studyUid];
    source.dicom.dict['0020000E'].Value = [seriesUid];
    source.dicom.dict['00080018'].Value = [sopInstanceUid];
    source.dicom.meta['00020003'].Value = [sopInstanceUid];
    const part10 = new Uint8Array(source.dicom.write());

    const c = client();
    const result = await c.store([part10], services().dicomWebUrl);
    expect(result.status).toBe(200);
    expect(result.stored.map((s) => s.sopInstanceUid)).toEqual([sopInstanceUid]);
    expect(result.stored[0].sopClassUid).toBe(SopClass.VLWholeSlideMicroscopyImage);

    const found = await c.searchInstances({ baseUrl: services().dicomWebUrl, studyUid, seriesUid });
    expect(found.map((d) => d['00080018'].Value?.[0])).toEqual([sopInstanceUid]);
    const frames = await c.fetchFrames(
      { baseUrl: services().dicomWebUrl, studyUid, seriesUid },
      sopInstanceUid,
      [0],
    );
    expect(Buffer.from(frames[0].data).equals(Buffer.from(source.frames[0]))).toBe(true);
  });

  it('reports a refused STOW-RS upload as STOW_FAILED, and refuses non-Part 10 bytes before sending', async () => {
    const c = client();
    const notDicom = new Uint8Array(300);
    notDicom.set(new TextEncoder().encode('DICM'), 128);
    const refused = await failure(c.store([notDicom], services().dicomWebUrl));
    expect(refused.code).toBe('STOW_FAILED');
    expect(refused.message).toMatch(/HTTP 400/);
    const noMagic = await failure(c.store([new Uint8Array(10)], services().dicomWebUrl));
    expect(noMagic.code).toBe('INVALID_ARGUMENT');
    const noDestination = await failure(c.store([notDicom]));
    expect(noDestination.code).toBe('INVALID_ARGUMENT');
    expect(noDestination.message).toContain('PATHEMBED_SR_DESTINATION');
  });
});
