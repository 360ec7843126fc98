"""Google's own Path Foundation predictor as a reference, one JSON request per line.

bench/predict-compat.ts sends the same requests to pathembed's POST /v1/predict and to this
process, and compares the answers. This file holds no serving code: it imports Google's
(Google-Health/path-foundation, `python/serving`, found through PATHEMBED_PF_SRC) and EZ-WSI
(PATHEMBED_EZWSI_SRC) from their checkouts, and gives them the one thing they leave to the host:
a model runner. Ours runs the same ONNX file pathembed loads, through onnxruntime, so that both
sides embed the same pixels with the same weights and any difference comes from reading.

Protocol: argv[1] is the ONNX model. Each stdin line is a request body (JSON); each stdout line is
`{"body": <what Google's executor answers>}` or `{"exception": "<type>: <message>"}` when Google's
code raised past its own error mapping (its HTTP layer would answer 500). Google's logs go to
stderr.

Environment, as Google's server reads it: APPROVED_DICOM_STORE_SOURCE_LIST,
APPROVED_GCS_SOURCE_LIST.
"""

import json
import os
import sys


def _paths() -> None:
  for var in ('PATHEMBED_PF_SRC', 'PATHEMBED_EZWSI_SRC'):
    src = os.environ.get(var)
    if src:
      sys.path.insert(0, src)


def main() -> None:
  _paths()
  # Google's logger writes to Cloud Logging unless told to use absl's (stderr).
  os.environ.setdefault('ENABLE_CLOUD_LOGGING', 'false')
  import numpy as np
  import onnxruntime as ort
  from absl import flags

  # Google's modules define absl flags at import; parse them from the environment defaults.
  from serving import pete_error_mapping
  from serving import pete_errors
  from serving import pete_predictor_v2
  from serving.data_models import embedding_response
  from serving.serving_framework import model_runner

  flags.FLAGS(sys.argv[:1])
  _orthanc_qido_transfer_syntax()
  _orthanc_bulkdata()

  class OnnxRunner(model_runner.ModelRunner):
    """The host's half of Google's contract: a float32 NHWC batch in, output_0 out."""

    def __init__(self, model_path: str):
      options = ort.SessionOptions()
      options.intra_op_num_threads = int(os.environ.get('PATHEMBED_REFERENCE_THREADS', '2'))
      self._session = ort.InferenceSession(model_path, options, providers=['CPUExecutionProvider'])
      self._input = self._session.get_inputs()[0].name

    def run_model_multiple_output(self, model_input, *, model_name='default', model_version=None,
                                  model_output_keys):
      if isinstance(model_input, dict):
        model_input = next(iter(model_input.values()))
      batch = np.asarray(model_input, dtype=np.float32)
      names = sorted(model_output_keys)
      outputs = self._session.run(names, {self._input: batch})
      return dict(zip(names, outputs))

  runner = OnnxRunner(sys.argv[1])
  with pete_predictor_v2.PetePredictor() as predictor:
    for line in sys.stdin:
      line = line.strip()
      if not line:
        continue
      try:
        try:
          request = json.loads(line)
        except json.JSONDecodeError as exp:
          raise pete_errors.InvalidRequestFieldError('Failed to parse request json.') from exp
        body = predictor.predict(request, runner)
        answer = {'body': body}
      except pete_errors.PeteError as err:
        answer = {'body': embedding_response.prediction_error_response_v2(
            pete_error_mapping.get_error_code(err))}
      except Exception as err:  # pylint: disable=broad-except
        answer = {'exception': f'{type(err).__name__}: {err}'}
      sys.stdout.write(json.dumps(answer, default=_plain) + '\n')
      sys.stdout.flush()


def _orthanc_qido_transfer_syntax() -> None:
  """Orthanc's QIDO answers lack TransferSyntaxUID (0002,0010), which EZ-WSI requires.

  Google Healthcare's answers carry it. The value is read once per instance from Orthanc's
  WADO-RS metadata (which has it), so nothing is guessed.
  """
  from ez_wsi_dicomweb import dicom_web_interface

  original = dicom_web_interface.DicomWebInterface.get_instances
  syntaxes = {}

  def get_instances(self, parent_path, **kw):
    found = original(self, parent_path, **kw)
    for obj in found:
      if '00020010' in obj.dicom_tags:
        continue
      series = str(parent_path.GetSeriesPath()) if hasattr(parent_path, 'GetSeriesPath') else str(parent_path)
      if series not in syntaxes:
        for ds in _metadata(series):
          uid = ds.get('00080018', {}).get('Value', [''])[0]
          syntaxes[uid] = ds.get('00020010', {}).get('Value', [''])[0]
      uid = obj.dicom_tags.get('00080018', {}).get('Value', [''])[0]
      obj.dicom_tags['00020010'] = {'vr': 'UI', 'Value': [syntaxes.get(uid, '')]}
    return found

  dicom_web_interface.DicomWebInterface.get_instances = get_instances


def _orthanc_bulkdata() -> None:
  """EZ-WSI asks bulk data (the ICC profile) as application/octet-stream, which Google Healthcare
  answers and Orthanc refuses; Orthanc answers the standard multipart/related form, read here."""
  from ez_wsi_dicomweb import dicom_web_interface
  import requests
  from requests_toolbelt.multipart import decoder

  def get_bulkdata(self, uri, chunk_size=0):
    headers = {'Accept': 'multipart/related; type="application/octet-stream"'}
    self.credentials().apply(headers)
    res = requests.get(uri, headers=headers, timeout=60)
    res.raise_for_status()
    parts = decoder.MultipartDecoder.from_response(res).parts
    return parts[0].content if parts else b''

  dicom_web_interface.DicomWebInterface.get_bulkdata = get_bulkdata

  # Without a BulkDataURI in QIDO answers, EZ-WSI downloads the smallest level's whole instance
  # (application/dicom; transfer-syntax=*) to find the profile; Orthanc refuses that (400). The
  # same profile is read here from the instance's WADO-RS metadata, as inline bytes or bulk data.
  import base64
  from ez_wsi_dicomweb import slide_level_map

  def level_icc_profile_bytes(path, dwi):
    res = requests.get(f'{path}/metadata', headers={'Accept': 'application/dicom+json'}, timeout=60)
    res.raise_for_status()
    ds = res.json()[0]
    holders = ds.get('00480105', {}).get('Value', [])[:1] + [ds]
    for holder in holders:
      element = holder.get('00282000')
      if not element:
        continue
      if element.get('InlineBinary'):
        return base64.b64decode(element['InlineBinary'])
      if element.get('BulkDataURI'):
        return get_bulkdata(dwi, element['BulkDataURI'])
    return b''

  slide_level_map._get_level_icc_profile_bytes = level_icc_profile_bytes


def _metadata(series: str):
  import requests
  res = requests.get(f'{series}/metadata', headers={'Accept': 'application/dicom+json'}, timeout=60)
  res.raise_for_status()
  return res.json()


def _plain(value):
  """numpy scalars and arrays in Google's answers, as JSON."""
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'{type(value).__name__} is not JSON')


if __name__ == '__main__':
  main()
