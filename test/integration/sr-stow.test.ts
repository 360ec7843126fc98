import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { type DicomWebClient, parseContentType, readMultipart } from '../../src/dicomweb/index.js';
import { dicomWebClient } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';
import { encodePart10 } from '../../src/results/sr/dicom-part10.js';
import { buildEmbeddingSr } from '../../src/results/sr/embedding-sr.js';
import { stowSr } from '../../src/results/sr/store-sr.js';
import { SopClass } from '../../src/uids.js';
import { fixture, services } from '../helpers/services.js';
import { validateSrFile } from '../helpers/sr-validation.js';

const DIM = 384;
let dir: string;
let client: DicomWebClient;
let metadata: DicomJsonDataset[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-sr-stow-'));
  client = dicomWebClient(
    loadConfig({ PATHEMBED_RETRY_MAX_ATTEMPTS: '2', PATHEMBED_RETRY_BASE_DELAY_MS: '10' }),
  );
  metadata = await client.seriesMetadata(fixture('cmu-jpeg').seriesUrl);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function validateSr(bytes: Uint8Array, name: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  const stdout = await validateSrFile(file);
  expect(stdout).toContain('(EMB0383,99PATHEMBED,');
  return stdout;
}

function buildSr(jobKey: string) {
  const source = metadata[0];
  const refs = metadata.map((m) => ({
    sopClassUid: SopClass.VLWholeSlideMicroscopyImage,
    sopInstanceUid: m['00080018'].Value![0] as string,
  }));
  const embedding = (s: number) => Float32Array.from({ length: DIM }, (_, i) => Math.cos(i * 0.11 + s));
  return buildEmbeddingSr({
    jobKey,
    sourceMetadata: source,
    evidence: refs,
    regionImage: { ...refs[0], scaleFromGrid: { x: 0.5 / 0.499, y: 0.5 / 0.499 } },
    model: { name: 'sr-stow-test', version: '1', sha256: 'd'.repeat(64) },
    parameters: { pixelSpacingUm: 0.5 },
    pixelSpacingUm: 0.5,
    patchSizePx: 224,
    patchCount: 2,
    meanEmbedding: embedding(0),
    patches: [0, 1].map((i) => ({
      index: i,
      x: 224 * i,
      y: 0,
      width: 224,
      height: 224,
      embedding: embedding(i + 1),
    })),
    maxPatches: 10,
    jsonResultName: 'result.json',
  });
}

/** Offset of the first byte after the file meta group (0002,xxxx). */
function afterMetaGroup(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const groupLengthValueOffset = 128 + 4 + 8;
  return groupLengthValueOffset + 4 + view.getUint32(groupLengthValueOffset, true);
}

async function wadoInstance(study: string, series: string, sop: string): Promise<Uint8Array> {
  const url = `${services().dicomWebUrl}/studies/${study}/series/${series}/instances/${sop}`;
  const res = await fetch(url, { headers: { Accept: 'multipart/related; type="application/dicom"' } });
  expect(res.status).toBe(200);
  const boundary = parseContentType(res.headers.get('content-type') ?? '').params.boundary;
  const parts = [];
  for await (const part of readMultipart(res.body!, boundary)) parts.push(part);
  expect(parts).toHaveLength(1);
  return parts[0].data;
}

async function qidoSrInstances(study: string): Promise<DicomJsonDataset[]> {
  const res = await fetch(`${services().dicomWebUrl}/studies/${study}/instances?Modality=SR`, {
    headers: { Accept: 'application/dicom+json' },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as DicomJsonDataset[];
}

describe('SR through the harness Orthanc', () => {
  it('stores, finds (QIDO Modality SR) and returns the SR byte for byte (WADO); twice leaves one instance', async () => {
    const jobKey = `sr-stow-${Date.now()}`;
    const sr = buildSr(jobKey);
    const bytes = encodePart10(sr.dataset);
    await validateSr(bytes, 'stow.dcm');

    const stored = await stowSr(client, bytes, sr.sopInstanceUid, services().dicomWebUrl);
    expect(stored.sopInstanceUid).toBe(sr.sopInstanceUid);

    const found = (await qidoSrInstances(sr.studyInstanceUid)).filter(
      (d) => d['00080018']?.Value?.[0] === sr.sopInstanceUid,
    );
    expect(found).toHaveLength(1);
    expect(found[0]['0020000E'].Value![0]).toBe(sr.seriesInstanceUid);
    expect(found[0]['00080060'].Value![0]).toBe('SR');

    const back = await wadoInstance(sr.studyInstanceUid, sr.seriesInstanceUid, sr.sopInstanceUid);
    // Orthanc keeps the Part 10 file as received, meta group included: the whole file comes back.
    expect(back.length).toBe(bytes.length);
    expect(Buffer.compare(Buffer.from(back), Buffer.from(bytes))).toBe(0);

    // The same job again: same UIDs, so the store still holds one instance in one SR series.
    const again = encodePart10(buildSr(jobKey).dataset);
    await stowSr(client, again, sr.sopInstanceUid, services().dicomWebUrl);
    const after = (await qidoSrInstances(sr.studyInstanceUid)).filter(
      (d) => d['0020000E']?.Value?.[0] === sr.seriesInstanceUid,
    );
    expect(after).toHaveLength(1);
  });

  it('reports a refused upload with STOW_FAILED and a missing store with its DICOMWEB code', async () => {
    const sr = buildSr(`sr-stow-refused-${Date.now()}`);
    const bytes = encodePart10(sr.dataset);
    // A Part 10 header followed by garbage: the store refuses it.
    const broken = new Uint8Array(bytes.length);
    broken.set(bytes.subarray(0, afterMetaGroup(bytes)));
    broken.fill(0xff, afterMetaGroup(bytes));
    const refused = await stowSr(client, broken, sr.sopInstanceUid, services().dicomWebUrl).catch((e) => e);
    expect(isPathembedError(refused, 'STOW_FAILED'), String(refused)).toBe(true);

    const missing = await stowSr(
      client,
      bytes,
      sr.sopInstanceUid,
      `${services().orthancUrl}/no-dicom-web-here`,
    ).catch((e) => e);
    expect(isPathembedError(missing, 'DICOMWEB_NOT_FOUND'), String(missing)).toBe(true);

    const unapproved = await stowSr(client, bytes, sr.sopInstanceUid, 'https://example.org/dicom-web').catch(
      (e) => e,
    );
    expect(isPathembedError(unapproved, 'UNAPPROVED_DICOM_STORE')).toBe(true);
  });
});
