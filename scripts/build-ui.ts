/**
 * `npm run build`'s second step: the web page's bundle (src/ui/browser with OpenSeadragon) and its
 * static files into dist/src/ui/static, beside the compiled src/ui, so a production install serves
 * them without esbuild.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { BUNDLE_NAME, buildUiBundle, STATIC_DIR } from '../src/ui/ui-assets.js';

const target = path.resolve('dist/src/ui/static');
await fs.mkdir(target, { recursive: true });
for (const name of await fs.readdir(STATIC_DIR)) {
  await fs.copyFile(path.join(STATIC_DIR, name), path.join(target, name));
}
await fs.writeFile(path.join(target, BUNDLE_NAME), await buildUiBundle());
process.stdout.write(`web page written to ${target}\n`);
