/**
 * `pathembed view --result result.json --slide <folder or series URL>`: the web page over one
 * finished result on this machine, with no Redis (the local viewer, src/ui/local-viewer.ts).
 * `pathembed demo --serve` does the same for the demo's own result. Listens on 127.0.0.1 unless
 * told otherwise (the local viewer has no API keys) and prints the /ui link; stops on SIGINT or
 * SIGTERM.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { listen } from '../api/server.js';
import { type Config, loadConfig } from '../config.js';
import { searchBuildOptions } from '../domain-options.js';
import { createLogger, type Logger } from '../log.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import { createLocalViewer, LOCAL_JOB_ID } from '../ui/local-viewer.js';
import type { SlideAccess } from '../wsi/slide-opener.js';
import {
  addSourceOptions,
  commandAccess,
  commandSlideOpener,
  type SourceArgumentOptions,
  sourceSpecFromArgument,
} from './open-source.js';
import { untilStopSignal } from './worker-command.js';

export const DEFAULT_VIEW_HOST = '127.0.0.1';
/** Listen addresses only this machine reaches: the viewer then answers loopback Host names only. */
const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', 'localhost', '::1']);
export const DEFAULT_VIEW_PORT = 8090;

export interface ServeResultOptions {
  readonly resultPath: string;
  readonly slide: SlideSourceSpec;
  readonly host: string;
  readonly port: number;
  readonly access?: SlideAccess;
  readonly sourceOptions?: SourceArgumentOptions;
}

/** Serves one local result until a stop signal; prints the page's link on stderr and stdout. */
export async function serveLocalResult(
  config: Config,
  logger: Logger,
  options: ServeResultOptions,
): Promise<void> {
  const viewer = await createLocalViewer({
    resultPath: path.resolve(options.resultPath),
    slide: options.slide,
    opener: commandSlideOpener(config, options.sourceOptions ?? {}, logger),
    ...(options.access ? { access: options.access } : {}),
    search: searchBuildOptions(config),
    logger,
    loopbackHostsOnly: LOOPBACK_ADDRESSES.has(options.host),
  });
  const server = await listen(viewer.app, options.host, options.port);
  const link = `${server.url}/ui/#/jobs/${LOCAL_JOB_ID}`;
  process.stderr.write(`\npathembed viewer: ${viewer.patchCount} patches; open ${link}\n(Ctrl-C stops it)\n`);
  process.stdout.write(`${JSON.stringify({ ui: link })}\n`);
  await untilStopSignal(logger);
  await server.close();
  await viewer.close();
}

interface ViewOptions extends SourceArgumentOptions {
  readonly result: string;
  readonly slide: string;
  readonly host: string;
  readonly port: string;
}

export function registerViewCommand(program: Command): void {
  addSourceOptions(
    program
      .command('view')
      .description(
        'show a finished local result in the web page (no Redis): slide, patch overlay, nearest patches',
      )
      .requiredOption('--result <file>', 'the JSON result')
      .requiredOption('--slide <folder or series URL>', 'the slide the result was computed from')
      .option('--host <address>', 'address to listen on', DEFAULT_VIEW_HOST)
      .option('--port <n>', 'port (0 picks a free one)', String(DEFAULT_VIEW_PORT)),
  ).action(async (opts: ViewOptions) => {
    const config = loadConfig();
    const logger = createLogger(config.LOG_LEVEL, 'pathembed-view');
    await serveLocalResult(config, logger, {
      resultPath: opts.result,
      slide: await sourceSpecFromArgument(opts.slide),
      host: opts.host,
      port: Number(opts.port),
      access: commandAccess(config, opts),
      sourceOptions: opts,
    });
  });
}
