/**
 * `pathembed serve`: the HTTP API (jobs, /v1/predict, health, metrics, OpenAPI). It queues work
 * in Redis and never embeds itself, so it needs no model and no GPU; run `pathembed worker`
 * processes beside it. Stops gracefully on SIGTERM/SIGINT.
 *
 *   pathembed serve [--port N] [--host ADDRESS]
 */
import type { Command } from 'commander';
import { createApi } from '../api/app.js';
import { listen } from '../api/server.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { configWithOverrides, untilStopSignal } from './worker-command.js';

interface ServeCommandOptions {
  port?: string;
  host?: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP API (queues jobs in Redis; run `pathembed worker` processes to do the work)')
    .option('--port <n>', 'port (default PATHEMBED_PORT)')
    .option('--host <address>', 'address to listen on (default PATHEMBED_HOST)')
    .action(async (opts: ServeCommandOptions) => {
      const config = configWithOverrides(loadConfig(), {
        PATHEMBED_PORT: opts.port,
        PATHEMBED_HOST: opts.host,
      });
      const logger = createLogger(config.LOG_LEVEL, 'pathembed-api');
      const api = await createApi(config, logger);
      const server = await listen(
        api.app,
        config.PATHEMBED_HOST,
        config.PATHEMBED_PORT,
        config.PATHEMBED_KEEP_ALIVE_TIMEOUT_MS,
      );
      logger.info(
        { url: server.url, apiKeys: config.PATHEMBED_API_KEYS?.length ?? 0, tokens: api.ctx.vault.enabled },
        'pathembed API listening',
      );
      await untilStopSignal(logger);
      await server.close();
      await api.close();
      logger.info('pathembed API stopped');
      logger.flush();
    });
}
