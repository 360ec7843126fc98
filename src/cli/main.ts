#!/usr/bin/env node
/**
 * The `pathembed` command line: one program, subcommands registered by their own modules under
 * src/cli/. Commands print JSON on stdout (unless told to write a file) and errors as one JSON
 * object on stderr with their code, exiting non-zero.
 */
import { Command } from 'commander';
import { isPathembedError } from '../errors.js';
import { registerBatchCommand } from './batch-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerDoctorCommand } from './doctor-command.js';
import { registerEmbedCommand } from './embed-command.js';
import { registerInfoCommand } from './info-command.js';
import { registerModelCommands } from './model-commands.js';
import { registerPatchCommands } from './patch-commands.js';
import { registerSearchCommand } from './search-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerViewCommand } from './view-command.js';
import { registerWorkerCommand } from './worker-command.js';

const program = new Command('pathembed')
  .description('Whole-slide DICOM images to Path Foundation embeddings')
  .version('0.1.0')
  .showHelpAfterError();

// Each module adds its subcommands; keep this list in the order `pathembed --help` shows them.
const registrations: Array<(program: Command) => void> = [
  registerInfoCommand,
  registerEmbedCommand,
  registerDemoCommand,
  registerPatchCommands,
  registerModelCommands,
  registerServeCommand,
  registerViewCommand,
  registerWorkerCommand,
  registerBatchCommand,
  registerSearchCommand,
  registerDoctorCommand,
];

for (const register of registrations) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isPathembedError(err)) {
    process.stderr.write(`${JSON.stringify({ error: err.toJSON() })}\n`);
    process.stderr.write(`pathembed: ${err.code}: ${err.message}\n`);
  } else {
    process.stderr.write(`pathembed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exitCode = 1;
});
