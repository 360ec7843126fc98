/**
 * `pathembed info <series>`: what a slide holds, as JSON on stdout: levels (size, tiles, frames,
 * spacing in um, transfer syntaxes, colour model, tiling, instances) and whether it has a label,
 * overview and thumbnail. <series> is a DICOMweb series reference or a local folder of Part 10
 * files, with the options every slide command takes (open-source.ts).
 */
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { slideInfo } from '../wsi/slide-info.js';
import { addSourceOptions, openSourceFromArgument, type SourceArgumentOptions } from './open-source.js';

export function registerInfoCommand(program: Command): void {
  addSourceOptions(
    program
      .command('info')
      .description('Describe a slide: levels, tiles, spacing, transfer syntaxes and associated images (JSON)')
      .argument(
        '<series>',
        'DICOMweb series URL, Google Healthcare series path, or a local folder of DICOM files',
      ),
  ).action(async (series: string, opts: SourceArgumentOptions) => {
    const source = await openSourceFromArgument(series, loadConfig(), opts);
    try {
      const info = await slideInfo(source);
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    } finally {
      await source.close?.();
    }
  });
}
