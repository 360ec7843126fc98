import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { engineOptions, pipelineDeps } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import {
  assertSrStored,
  type PipelineDeps,
  runEmbeddingJob,
  type SlideSourceSpec,
} from '../../src/pipeline/index.js';
import { decodePart10, readResult } from '../../src/results/index.js';
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-pipeline-sr-'));
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

async function checkSr(file: string): Promise<string> {
  const stdout = await validateSrFile(file);
  for (const code of ['EMB0000', 'EMB0191', 'EMB0383']) expect(stdout).toContain(`(${code},99PATHEMBED,`);
  return stdout;
}

async function srInstancesOfSeries(study: string, series: string): Promise<DicomJsonDataset[]> {
  const res = await fetch(`${services().dicomWebUrl}/studies/${study}/series/${series}/instances`, {
    headers: { Accept: 'application/dicom+json' },
  });
  if (res.status === 204) return [];
  return (await res.json()) as DicomJsonDataset[];
}

describe('a job writes its SR and stores it', () => {
  it('at 1 um/px (level 1): SR valid, per-patch regions on level 0, stored once however often the job runs', async () => {
    const jsonPath = path.join(dir, 'one-um.json');
    const srPath = path.join(dir, 'one-um.dcm');
    const options = { pixelSpacingUm: 1 };
    const outcome = await runEmbeddingJob(spec, options, { jsonPath, srPath, stow: true }, deps);
    assertSrStored(outcome);
    expect(outcome.plan.level.index).toBe(1);
    const patchCount = outcome.summary.patchCount;
    expect(patchCount).toBeGreaterThan(0);
    expect(outcome.sr?.includesPatches).toBe(true);
    const listing = await checkSr(srPath);
    expect(listing.split('(EMB0000,99PATHEMBED,').length - 1).toBe(1 + patchCount);

    // The regions are in level 0's pixel matrix: a 224 px patch at 1 um/px spans ~449 level-0 pixels.
    const ds = decodePart10(new Uint8Array(await readFile(srPath))) as Ds;
    const groups = ds.ContentSequence.at(-1).ContentSequence;
    const region = groups[1].ContentSequence.find((it: Ds) => it.ValueType === 'SCOORD');
    const data = Array.from(region.GraphicData as number[]);
    expect(data[2] - data[0]).toBeGreaterThan(440);
    expect(data[2] - data[0]).toBeLessThan(460);
    expect(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID).toBe(
      outcome.plan.baseLevel.sopInstanceUid,
    );
    // The SR's mean is the JSON's mean, exactly.
    const doc = await readResult(jsonPath);
    const mean = groups[0].ContentSequence.filter((it: Ds) =>
      /^EMB\d{4}$/.test(it.ConceptNameCodeSequence[0].CodeValue),
    );
    expect(Float32Array.from(mean.map((it: Ds) => it.MeasuredValueSequence[0].FloatingPointValue))).toEqual(
      doc.summary.meanEmbedding,
    );

    const sr = outcome.sr!;
    expect(ds.StudyInstanceUID).toBe(outcome.plan.studyInstanceUid);
    expect(await srInstancesOfSeries(sr.studyInstanceUid, sr.seriesInstanceUid)).toHaveLength(1);
    const again = await runEmbeddingJob(
      spec,
      options,
      { jsonPath: path.join(dir, 'again.json'), stow: true },
      deps,
    );
    assertSrStored(again);
    expect(again.sr?.sopInstanceUid).toBe(sr.sopInstanceUid);
    expect(await srInstancesOfSeries(sr.studyInstanceUid, sr.seriesInstanceUid)).toHaveLength(1);
  });

  it('above PATHEMBED_SR_MAX_PATCHES writes the slide-level SR naming the JSON; a failed STOW keeps the JSON', async () => {
    const small: PipelineDeps = { ...deps, options: { ...deps.options, srMaxPatches: 1 } };
    const jsonPath = path.join(dir, 'kept.json');
    const srPath = path.join(dir, 'kept.dcm');
    const outcome = await runEmbeddingJob(
      spec,
      { pixelSpacingUm: 2 },
      { jsonPath, srPath, stow: `${services().orthancUrl}/no-dicom-web-here` },
      small,
    );
    expect(outcome.sr?.includesPatches).toBe(false);
    const listing = await checkSr(srPath);
    expect(listing.split('(EMB0000,99PATHEMBED,').length - 1).toBe(1);
    expect(listing).toContain('(121106,DCM,"Comment")');
    expect(outcome.sr?.stow).toMatchObject({ ok: false, error: { code: 'DICOMWEB_NOT_FOUND' } });
    expect(() => assertSrStored(outcome)).toThrow(/kept\.json/);
    await access(jsonPath);
    expect((await readResult(jsonPath)).summary.patchCount).toBe(outcome.summary.patchCount);

    const refused = await runEmbeddingJob(
      spec,
      { pixelSpacingUm: 2 },
      { jsonPath: path.join(dir, 'refused.json'), stow: 'https://example.org/dicom-web' },
      small,
    );
    expect(refused.sr?.stow).toMatchObject({ ok: false, error: { code: 'UNAPPROVED_DICOM_STORE' } });
  });
});
