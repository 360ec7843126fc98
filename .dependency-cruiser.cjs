/**
 * The architecture, checked by `npm run lint:deps` (part of `npm test`). LAYERS is the one statement
 * of which src/ folder may import which: dependency-cruiser enforces it, and `npm run docs` writes
 * it into README's Architecture section, so the picture and the rules cannot drift apart.
 *
 * Root modules (src/*.ts: errors, uids, log, dicom-json, units...) are shared by every folder.
 * config.ts and domain-options.ts read and translate the environment, so only the edges
 * (cli, api, queue) may import them.
 */

const { LAYERS, EDGES } = require('./scripts/architecture.cjs');

const FOLDERS = Object.keys(LAYERS);

const layerRules = FOLDERS.map((folder) => {
  const forbidden = FOLDERS.filter((other) => other !== folder && !LAYERS[folder].includes(other));
  return {
    name: `layer-${folder}`,
    comment: `src/${folder} may import ${LAYERS[folder].length ? LAYERS[folder].join(', ') : 'no other folder'} (and the root modules)`,
    severity: 'error',
    from: { path: `^src/${folder}/` },
    to: { path: `^src/(${forbidden.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles anywhere in src/ or models/.',
      severity: 'error',
      from: { path: '^(src|models)/' },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'config-at-the-edges',
      comment: `Only ${EDGES.join(', ')} read the environment; the domains take typed options.`,
      severity: 'error',
      from: { path: '^src/', pathNot: `^src/(${EDGES.join('|')})/|^src/domain-options\\.ts$` },
      to: { path: '^src/(config|domain-options)\\.ts$' },
    },
    {
      name: 'root-modules-stay-below',
      comment: 'Shared root modules (errors, uids, units...) import no folder of src/.',
      severity: 'error',
      from: { path: '^src/[^/]+\\.ts$', pathNot: '^src/domain-options\\.ts$' },
      to: { path: '^src/[^/]+/' },
    },
    {
      name: 'src-is-self-contained',
      comment: 'The service imports no tool, test or benchmark; only the CLI drives the models/ tool.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^(models|test|bench|scripts)/' },
    },
    {
      name: 'models-is-a-tool-over-embed',
      comment:
        'models/ builds model files with src/embed; it reaches nothing else in src/ but the root modules.',
      severity: 'error',
      from: { path: '^models/' },
      to: { path: '^src/[^/]+/', pathNot: '^src/embed/' },
    },
    {
      name: 'bench-has-its-own-helpers',
      comment: 'Benchmarks do not import the tests; shared launchers live in scripts/dev-services.',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
