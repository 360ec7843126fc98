import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  ERRORS_DOC,
  errorsMarkdown,
  README,
  RESULT_SCHEMA,
  resultSchemaJson,
  withArchitecture,
  withConfigTable,
} from '../../scripts/docs.js';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { ERROR_CODES, PathembedError } from '../../src/errors.js';

describe('generated documentation', () => {
  it('docs/errors.md lists every error code (run `npm run docs` when this fails)', async () => {
    const doc = await fs.readFile(ERRORS_DOC, 'utf8');
    expect(doc).toBe(errorsMarkdown());
    for (const code of Object.keys(ERROR_CODES)) expect(doc).toContain(`\`${code}\``);
  });

  it("README's configuration table matches src/config.ts (run `npm run docs` when this fails)", async () => {
    const readme = await fs.readFile(README, 'utf8');
    expect(readme).toBe(withConfigTable(readme));
    for (const name of Object.keys(CONFIG_VARIABLES)) expect(readme).toContain(`\`${name}\``);
  });

  it("README's Architecture table states the dependency check's layers (run `npm run docs` when this fails)", async () => {
    const readme = await fs.readFile(README, 'utf8');
    expect(readme).toBe(withArchitecture(readme));
    const { LAYERS } = createRequire(import.meta.url)('../../scripts/architecture.cjs') as {
      LAYERS: Record<string, string[]>;
    };
    for (const [folder, uses] of Object.entries(LAYERS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${folder}/\` |`));
      expect(row, folder).toBeDefined();
      for (const used of uses) expect(row).toContain(`\`${used}\``);
    }
  });

  it('docs/result-schema.json is the result schema (run `npm run docs` when this fails)', async () => {
    expect(await fs.readFile(RESULT_SCHEMA, 'utf8')).toBe(resultSchemaJson());
  });
});

describe('loadConfig', () => {
  it('applies defaults and parses types', () => {
    const config = loadConfig({});
    expect(config.PATHEMBED_BATCH_SIZE).toBe(32);
    expect(config.PATHEMBED_PIXEL_SPACING_UM).toBe(0.5);
    expect(config.PATHEMBED_ALLOWED_STORES).toEqual(['http://127.0.0.1', 'http://localhost', 'http://[::1]']);
    expect(config.PATHEMBED_MODEL_PATH.startsWith('/')).toBe(true);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names every invalid variable with its value', () => {
    let caught: unknown;
    try {
      loadConfig({
        PATHEMBED_BATCH_SIZE: '0',
        PATHEMBED_EXECUTION_PROVIDER: 'gpu',
        PATHEMBED_TOKEN_KEY: 'short',
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PathembedError);
    const err = caught as PathembedError;
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('PATHEMBED_BATCH_SIZE="0"');
    expect(err.message).toContain('PATHEMBED_EXECUTION_PROVIDER="gpu"');
    expect(err.message).toContain('PATHEMBED_TOKEN_KEY');
    expect(err.message).not.toContain('PATHEMBED_PORT');
  });
});
