"""Reads a pathembed bulk-annotation file (ANN) back with highdicom and compares it to the JSON result.

highdicom is not on the package index this project's machines use, so this check is run by hand
from a highdicom source checkout (docs/ann.md says how); CI reads the same files with pydicom and
dciodvfy instead. Prints one line per finding and exits 1 on any mismatch:

  PYTHONPATH=<highdicom>/src python scripts/check-ann-highdicom.py result-ann.dcm result.json

With `--skip-attribute-check`, highdicom's required-attribute check is bypassed: it needs
`_standard/module_attribute_map.json`, which a source snapshot may lack (it is generated from the
DICOM standard). dciodvfy checks the IOD in CI.
"""
import json
import sys

import numpy as np
import pydicom


def main(argv):
  args = [a for a in argv if not a.startswith('--')]
  import highdicom as hd
  if '--skip-attribute-check' in argv:
    import highdicom._standard_utils as standard_utils
    import highdicom.ann.content as ann_content
    import highdicom.content as content
    for module in (standard_utils, ann_content, content):
      module.check_required_attributes = lambda *a, **k: None
  ann = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(args[0]))
  result = json.load(open(args[1]))
  groups = ann.get_annotation_groups()
  print(f'highdicom {hd.__version__}: {len(groups)} annotation group(s)')
  group = groups[0]
  graphics = group.get_graphic_data(coordinate_type='2D')
  names, values, _units = group.get_measurements()
  print(f'group "{group.label}": {group.graphic_type.value}, {group.number_of_annotations} annotations, '
        f'measurements: {", ".join(n.meaning for n in names)}')
  patches = result['patches']
  mismatches = 0
  if group.number_of_annotations != len(patches):
    print(f'{group.number_of_annotations} annotations but {len(patches)} patches in the JSON result')
    mismatches += 1
  for i, p in enumerate(patches[: group.number_of_annotations]):
    x0, y0, x1, y1 = p['x'], p['y'], p['x'] + p['width'], p['y'] + p['height']
    corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    if np.asarray(graphics[i]).tolist() != corners:
      print(f'patch {p["index"]}: rectangle {np.asarray(graphics[i]).tolist()} != {corners}')
      mismatches += 1
    if abs(float(values[i][0]) - p['tissueFraction']) > 1e-6:
      print(f'patch {p["index"]}: tissue fraction {values[i][0]} != {p["tissueFraction"]}')
      mismatches += 1
  print(f'{len(patches)} patches compared, {mismatches} mismatches')
  return 1 if mismatches else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
