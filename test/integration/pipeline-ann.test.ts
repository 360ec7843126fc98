import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { parseContentType, readMultipart } from '../../src/dicomweb/index.js';
import { engineOptions, pipelineDeps } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import {
  assertSrStored,
  type PipelineDeps,
  runEmbeddingJob,
  type SlideSourceSpec,
} from '../../src/pipeline/index.js';
import { decodePart10 } from '../../src/results/index.js';
import { annUidsFor } from '../../src/results/sr/derived-uids.js';
import { SopClass } from '../../src/uids.js';
import { readAnnWithPydicom, validateAnnFile } from '../helpers/ann-validation.js';
import { fixture, services } from '../helpers/services.js';
import { validateSrFile } from '../helpers/sr-validation.js';

// biome-ignore lint/suspicious/noExplicitAny: decoded DICOM datasets are walked freely in assertions
type Ds = Record<string, any>;

let dir: string;
let config: Config;
let engine: EmbeddingEngine;
let deps: PipelineDeps;
let spec: SlideSourceSpec;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-pipeline-ann-'));
  config = loadConfig({
    PATHEMBED_INTRA_OP_THREADS: '2',
    PATHEMBED_EXECUTION_PROVIDER: 'cpu',
    PATHEMBED_BATCH_SIZE: '8',
    PATHEMBED_RETRY_MAX_ATTEMPTS: '1',
  });
  const logger = createLogger('silent');
  await ensureDefaultModel(engineOptions(config), logger);
  engine = await EmbeddingEngine.open(engineOptions(config), logger);
  deps = pipelineDeps(config, logger, engine);
  const f = fixture('cmu-jpeg');
  spec = { kind: 'dicomweb', baseUrl: services().dicomWebUrl, studyUid: f.studyUid, seriesUid: f.seriesUid };
});

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

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

async function instancesOfSeries(study: string, series: string): Promise<DicomJsonDataset[]> {
  const res = await fetch(`${services().dicomWebUrl}/studies/${study}/series/${series}/instances`, {
    headers: { Accept: 'application/dicom+json' },
  });
  if (res.status === 204) return [];
  return (await res.json()) as DicomJsonDataset[];
}

function maxAbs(values: readonly number[]): number {
  return values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

describe('a job writes its bulk annotations (ANN)', () => {
  it('with every embedding component: valid, read back number for number by pydicom, referred to by the SR, stored once', async () => {
    const jsonPath = path.join(dir, 'ann.json');
    const annPath = path.join(dir, 'ann.dcm');
    const srPath = path.join(dir, 'ann-sr.dcm');
    const options = { pixelSpacingUm: 1 };
    const outcome = await runEmbeddingJob(
      spec,
      options,
      { jsonPath, annPath, annEmbedding: true, srPath, stow: true },
      deps,
    );
    assertSrStored(outcome);
    const n = outcome.summary.patchCount;
    expect(n).toBeGreaterThan(4);
    const ann = outcome.ann!;
    expect(ann.annotationCount).toBe(n);
    expect(ann.includesEmbedding).toBe(true);

    await validateAnnFile(annPath);

    const back = await readAnnWithPydicom(annPath, jsonPath);
    expect(back.sopClassUid).toBe(SopClass.MicroscopyBulkSimpleAnnotations);
    expect(back.modality).toBe('ANN');
    expect(back.studyUid).toBe(outcome.plan.studyInstanceUid);
    expect(back.sopInstanceUid).toBe(ann.sopInstanceUid);
    expect([back.coordinateType, back.pixelOrigin, back.graphicType]).toEqual(['2D', 'VOLUME', 'RECTANGLE']);
    expect(back.referencedImage).toBe(outcome.plan.baseLevel.sopInstanceUid);
    expect(back.count).toBe(n);
    // Corners: level-0 pixels, (column, row), top left of the top left pixel at (0, 0).
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 4; k++) {
        for (let c = 0; c < 2; c++) {
          expect(back.points[i]![k]![c]).toBeCloseTo(back.expected.corners[i]![k]![c]!, 3);
        }
      }
    }
    // A 224 px patch at 1 um/px spans ~449 level-0 pixels of this ~0.499 um/px slide.
    const side = back.points[0]![1]![0]! - back.points[0]![0]![0]!;
    expect(side).toBeGreaterThan(440);
    expect(side).toBeLessThan(460);

    const codes = back.measurements.map((m) => `${m.code}/${m.scheme}`);
    expect(codes.slice(0, 4)).toEqual([
      'TISSUEFRAC/99PATHEMBED',
      'PCA1/99PATHEMBED',
      'PCA2/99PATHEMBED',
      'PCA3/99PATHEMBED',
    ]);
    expect(codes).toHaveLength(4 + 384);
    expect(codes[4 + 383]).toBe('EMB0383/99PATHEMBED');
    expect(new Set(back.measurements.map((m) => m.unit))).toEqual(new Set(['1']));
    // Tissue fraction and every embedding value: exactly the JSON's (both float32).
    expect(back.measurements[0]!.values).toEqual(back.expected.tissue.map((t) => Math.fround(t)));
    for (let c = 0; c < 384; c++) {
      expect(back.measurements[4 + c]!.values).toEqual(back.expected.embeddings.map((e) => e[c]!));
    }
    // Principal component scores: numpy's eigh agrees with pathembed's power iteration.
    for (let c = 0; c < 3; c++) {
      const ours = back.measurements[1 + c]!.values;
      const theirs = back.expected.pcs[c]!;
      const tolerance = 1e-3 * maxAbs(theirs);
      ours.forEach((v, i) => {
        expect(Math.abs(v - theirs[i]!), `PCA${c + 1} of patch ${i}`).toBeLessThan(tolerance);
      });
    }

    // The SR points at the ANN and, since the ANN holds the embeddings, leaves per-patch groups out.
    await validateSrFile(srPath);
    const sr = decodePart10(new Uint8Array(await readFile(srPath))) as Ds;
    expect(outcome.sr?.includesPatches).toBe(false);
    const evidence = sr.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence[0];
    expect(evidence.SeriesInstanceUID).toBe(ann.seriesInstanceUid);
    expect(evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID).toBe(ann.sopInstanceUid);
    expect(evidence.ReferencedSOPSequence[0].ReferencedSOPClassUID).toBe(
      SopClass.MicroscopyBulkSimpleAnnotations,
    );

    // Stored over STOW-RS and fetched back byte for byte; the same job again leaves one instance.
    expect(ann.stow?.ok).toBe(true);
    const stored = await wadoInstance(ann.studyInstanceUid, ann.seriesInstanceUid, ann.sopInstanceUid);
    expect(Buffer.compare(Buffer.from(stored), await readFile(annPath))).toBe(0);
    const again = await runEmbeddingJob(
      spec,
      options,
      {
        jsonPath: path.join(dir, 'again.json'),
        annPath: path.join(dir, 'again.dcm'),
        annEmbedding: true,
        stow: true,
      },
      deps,
    );
    assertSrStored(again);
    expect(again.ann?.sopInstanceUid).toBe(ann.sopInstanceUid);
    expect(await instancesOfSeries(ann.studyInstanceUid, ann.seriesInstanceUid)).toHaveLength(1);
  });

  it('without the embedding: four columns, another instance UID, and the SR keeps its per-patch groups', async () => {
    const jsonPath = path.join(dir, 'small.json');
    const annPath = path.join(dir, 'small.dcm');
    const srPath = path.join(dir, 'small-sr.dcm');
    const outcome = await runEmbeddingJob(spec, { pixelSpacingUm: 2 }, { jsonPath, annPath, srPath }, deps);
    await validateAnnFile(annPath);
    const back = await readAnnWithPydicom(annPath, jsonPath);
    expect(back.measurements.map((m) => m.code)).toEqual(['TISSUEFRAC', 'PCA1', 'PCA2', 'PCA3']);
    expect(back.count).toBe(outcome.summary.patchCount);
    expect(outcome.ann?.includesEmbedding).toBe(false);
    // UIDs are functions of the job key and of whether the embedding is in: two objects, two UIDs.
    expect(outcome.ann?.sopInstanceUid).toBe(annUidsFor(outcome.jobKey, false).sopInstanceUid);
    expect(annUidsFor(outcome.jobKey, true).sopInstanceUid).not.toBe(outcome.ann?.sopInstanceUid);
    expect(outcome.sr?.includesPatches).toBe(true);
    const sr = decodePart10(new Uint8Array(await readFile(srPath))) as Ds;
    expect(
      sr.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID,
    ).toBe(outcome.ann!.sopInstanceUid);
  });
});
