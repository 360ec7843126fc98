"""EZ-WSI DICOMweb side of `npm run bench:wsi` (bench/wsi.ts runs it; see docs/benchmarks.md).

Two commands, each printing one JSON object on stdout:

  prepare IN OUT_DIR
      Copies one slide's Part 10 files (IN: a folder, searched recursively, or one file) into the
      layout EZ-WSI reads. A level stored TILED_SPARSE with every tile present (OrthancWSIDicomizer
      writes 2 x 2 blocks) gets its frames re-ordered row-major and is marked TILED_FULL; every
      pyramid level gets the ImageType EZ-WSI requires (VOLUME). Pixel data are moved, never
      re-encoded. Label, overview and thumbnail images are copied as they are. Reports the files
      and the largest level's transfer syntax and tile size. A level with tiles missing cannot be
      made TILED_FULL without inventing pixels, and a level split into a concatenation is not
      merged: each is refused, saying so.

  read --series URL --transfer-syntax UID --patch N --stride N --rounds N [--region X,Y,W,H]
      Reads every patch of the grid at level 0 (inside the region, when given) as EZ-WSI's notebook does (frame cache on,
      blocks of frames), ROUNDS times in this one process: round 1 is the fresh process, later
      rounds are warm. Each round opens the slide anew. Each patch is consumed as it is read (the
      sha256 of its RGB bytes, in the timed round, as bench/wsi-grid.ts does) and not kept. Reports
      seconds and CPU seconds (all threads) per round (metadata included, imports excluded) and the
      patch hashes of the last round.

EZ-WSI is not part of pathembed: this script runs in a venv that has it on sys.path
(PATHEMBED_EZWSI_PYTHON, PATHEMBED_EZWSI_SRC).
"""

import argparse
import hashlib
import json
import os
import sys
import time


ASSOCIATED_IMAGES = ('LABEL', 'OVERVIEW', 'THUMBNAIL')


def dicom_files(path: str) -> list:
  """One file, or every Part 10 file (the DICM preamble) under a folder, in name order."""
  if os.path.isfile(path):
    return [path]
  found = []
  for root, _, names in os.walk(path):
    for name in names:
      if name.upper() == 'DICOMDIR':
        continue
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        head = f.read(132)
      if len(head) == 132 and head[128:] == b'DICM':
        found.append(full)
  return sorted(found)


def prepare(in_path: str, out_dir: str) -> dict:
  import pydicom
  from pydicom.encaps import encapsulate, generate_frames

  os.makedirs(out_dir, exist_ok=True)
  written = []
  largest = None
  files = dicom_files(in_path)
  if not files:
    raise SystemExit(f'prepare: no DICOM Part 10 file under {in_path}')
  for index, path in enumerate(files):
    ds = pydicom.dcmread(path)
    image_type = [str(v).upper() for v in ds.get('ImageType', [])]
    associated = len(image_type) > 2 and image_type[2] in ASSOCIATED_IMAGES
    if not associated and 'TotalPixelMatrixColumns' in ds:
      if 'ConcatenationUID' in ds:
        raise SystemExit(
            f'prepare: {path} is part {ds.get("InConcatenationNumber", "?")} of a concatenation '
            '(a level split over several instances); EZ-WSI reads a level stored as one instance, '
            'and this script does not merge them')
      if str(ds.get('DimensionOrganizationType', '')).upper() != 'TILED_FULL':
        n = int(ds.NumberOfFrames)
        rows = -(-int(ds.TotalPixelMatrixRows) // int(ds.Rows))
        cols = -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
        if n != rows * cols or 'PerFrameFunctionalGroupsSequence' not in ds:
          raise SystemExit(
              f'prepare: {path} is a TILED_SPARSE level with {n} of its {rows * cols} tiles; '
              'EZ-WSI reads only TILED_FULL levels, and filling the missing tiles would invent pixels')
        frames = list(generate_frames(ds.PixelData, number_of_frames=n))
        per_frame = ds.PerFrameFunctionalGroupsSequence
        positions = []
        for i, item in enumerate(per_frame):
          pos = item.PlanePositionSlideSequence[0]
          positions.append((int(pos.RowPositionInTotalImagePixelMatrix),
                            int(pos.ColumnPositionInTotalImagePixelMatrix), i))
        grid = sorted((r * int(ds.Rows) + 1, c * int(ds.Columns) + 1) for r in range(rows) for c in range(cols))
        if sorted((row, col) for row, col, _ in positions) != grid:
          raise SystemExit(
              f'prepare: {path} has {n} frames but not one on each of its {rows * cols} tile positions; '
              'EZ-WSI reads only TILED_FULL levels, and re-ordering these would misplace tiles')
        order = [i for _, _, i in sorted(positions)]
        ds.PixelData = encapsulate([frames[i] for i in order])
        ds['PixelData'].VR = 'OB'
        ds.PerFrameFunctionalGroupsSequence = [per_frame[i] for i in order]
        ds.DimensionOrganizationType = 'TILED_FULL'
      flavour = image_type[3] if len(image_type) > 3 else 'NONE'
      ds.ImageType = [image_type[0] if image_type else 'DERIVED', 'PRIMARY', 'VOLUME', flavour]
      width = int(ds.TotalPixelMatrixColumns)
      if largest is None or width > largest[0]:
        largest = (width, str(ds.file_meta.TransferSyntaxUID), int(ds.Columns), int(ds.Rows))
    # Numbered: files of one slide in different folders may share a name.
    out = os.path.join(out_dir, f'{index:04d}-{os.path.basename(path)}')
    ds.save_as(out)
    written.append(out)
  if largest is None:
    raise SystemExit(f'prepare: no pyramid level (a tiled VL Whole Slide Microscopy image) under {in_path}')
  return {'files': written, 'transferSyntax': largest[1], 'tileWidth': largest[2], 'tileHeight': largest[3]}


def read(args) -> dict:
  src = os.environ.get('PATHEMBED_EZWSI_SRC')
  if src:
    sys.path.insert(0, src)
  t_import = time.perf_counter()
  from ez_wsi_dicomweb import credential_factory
  from ez_wsi_dicomweb import dicom_slide
  from ez_wsi_dicomweb import dicom_web_interface
  from ez_wsi_dicomweb.ml_toolkit import dicom_path
  import numpy as np
  import_seconds = time.perf_counter() - t_import

  # Orthanc's QIDO answers lack TransferSyntaxUID (0002,0010), which EZ-WSI needs.
  original = dicom_web_interface.DicomWebInterface.get_instances

  def get_instances(self, parent_path, **kw):
    found = original(self, parent_path, **kw)
    for obj in found:
      obj.dicom_tags.setdefault('00020010', {'vr': 'UI', 'Value': [args.transfer_syntax]})
    return found

  dicom_web_interface.DicomWebInterface.get_instances = get_instances

  base, series = args.series.split('/studies/', 1)
  study_uid, series_uid = series.split('/series/')
  rounds = []
  cpu_rounds = []
  hashes = []
  for r in range(args.rounds):
    t0 = time.perf_counter()
    c0 = time.process_time()
    dwi = dicom_web_interface.DicomWebInterface(credential_factory.NoAuthCredentialsFactory())
    path = dicom_path.FromString(f'{base}/studies/{study_uid}/series/{series_uid}')
    slide = dicom_slide.DicomSlide(dwi=dwi, path=path)
    # Orthanc refuses whole-instance downloads (400): read blocks of frames instead.
    slide.init_slide_frame_cache(max_instance_number_of_frames_to_prefer_whole_instance_download=0)
    level = slide.get_level_by_index(1)
    round_hashes = []
    x0, y0, width, height = args.region or (0, 0, level.width, level.height)
    for y in range(y0, y0 + height - args.patch + 1, args.stride):
      for x in range(x0, x0 + width - args.patch + 1, args.stride):
        patch = slide.get_patch(level, x, y, args.patch, args.patch).image_bytes()
        # hashlib reads the array's buffer: no copy, as pathembed's side hashes its buffer.
        round_hashes.append(hashlib.sha256(np.ascontiguousarray(patch, dtype=np.uint8)).hexdigest())
    seconds = time.perf_counter() - t0
    rounds.append(seconds)
    cpu_rounds.append(time.process_time() - c0)
    hashes = round_hashes
  return {'importSeconds': import_seconds, 'seconds': rounds, 'cpuSeconds': cpu_rounds, 'patches': len(hashes), 'sha256': hashes}


def main() -> None:
  parser = argparse.ArgumentParser()
  sub = parser.add_subparsers(dest='command', required=True)
  p = sub.add_parser('prepare')
  p.add_argument('in_dir')
  p.add_argument('out_dir')
  r = sub.add_parser('read')
  r.add_argument('--series', required=True)
  r.add_argument('--transfer-syntax', required=True)
  r.add_argument('--patch', type=int, default=224)
  r.add_argument('--stride', type=int, default=224)
  r.add_argument('--rounds', type=int, default=2)
  r.add_argument('--region', type=lambda v: tuple(int(n) for n in v.split(',')),
                 help='X,Y,WIDTH,HEIGHT at level 0: read the grid inside it only (default: the whole level)')
  args = parser.parse_args()
  result = prepare(args.in_dir, args.out_dir) if args.command == 'prepare' else read(args)
  json.dump(result, sys.stdout)
  sys.stdout.write('\n')


if __name__ == '__main__':
  main()
