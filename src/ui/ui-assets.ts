/**
 * The page's files: index.html, login.html and app.css from ./static, and app.js, the browser code
 * (./browser, TypeScript) bundled with OpenSeadragon from node_modules by esbuild. `npm run build`
 * writes the bundle once into dist/src/ui/static (scripts/build-ui.ts); run from sources (tsx),
 * the bundle is built in memory on first use, about half a second. Nothing is fetched from a CDN.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PathembedError } from '../errors.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const STATIC_DIR = path.join(HERE, 'static');
export const BROWSER_ENTRY = path.join(HERE, 'browser', 'main.ts');
export const BUNDLE_NAME = 'app.js';

/** Bundles the browser code with esbuild (a devDependency: a production install uses the built file). */
export async function buildUiBundle(): Promise<string> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new PathembedError(
      'INTERNAL',
      `The web page's script is not built and esbuild is not installed: run \`npm run build\` (it writes ${path.join(STATIC_DIR, BUNDLE_NAME)})`,
    );
  }
  const out = await esbuild.build({
    entryPoints: [BROWSER_ENTRY],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    legalComments: 'eof',
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}

let bundle: Promise<string> | undefined;

/** app.js: the prebuilt file when there is one, else built once per process. */
export function uiBundle(): Promise<string> {
  if (!bundle) {
    const built = path.join(STATIC_DIR, BUNDLE_NAME);
    bundle = existsSync(built) ? fs.readFile(built, 'utf8') : buildUiBundle();
    bundle.catch(() => {
      bundle = undefined;
    });
  }
  return bundle;
}
