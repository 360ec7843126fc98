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

`google_predict.py client MODEL PATHEMBED_PREDICT_URL API_KEY NAME=SERIES_URL...` instead drives
EZ-WSI's own client, `PathFoundationsEmbeddingEndpoint`, as a notebook does (DICOM patches, a
resized level, an in-memory image, SRGB normalisation, a store token), once against pathembed and
once against Google's predictor served over HTTP from this process, and prints one JSON line per
flow with the largest difference between the two embeddings the client returned.
"""

import json
import os
import sys


def _paths() -> None:
  for var in ('PATHEMBED_PF_SRC', 'PATHEMBED_EZWSI_SRC'):
    src = os.environ.get(var)
    if src:
      sys.path.insert(0, src)


def _google(model_path):
  """Google's predictor and our model runner, with the Orthanc adaptations applied."""
  _paths()
  os.environ.setdefault('ENABLE_CLOUD_LOGGING', 'false')
  import numpy as np
  import onnxruntime as ort
  from absl import flags
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

    def __init__(self):
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
      return dict(zip(names, self._session.run(names, {self._input: batch})))

  runner = OnnxRunner()

  def answer(predictor, line):
    """What Google's executor answers for one request body (a str)."""
    try:
      try:
        request = json.loads(line)
      except json.JSONDecodeError as exp:
        raise pete_errors.InvalidRequestFieldError('Failed to parse request json.') from exp
      return {'body': predictor.predict(request, runner)}
    except pete_errors.PeteError as err:
      return {'body': embedding_response.prediction_error_response_v2(
          pete_error_mapping.get_error_code(err))}
    except Exception as err:  # pylint: disable=broad-except
      return {'exception': f'{type(err).__name__}: {err}'}

  return pete_predictor_v2.PetePredictor(), answer


def client(model_path, pathembed_url, api_key, series_urls):
  """EZ-WSI's client against pathembed and against Google's predictor (module doc)."""
  import threading
  from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
  import numpy as np

  predictor_cm, answer = _google(model_path)
  from ez_wsi_dicomweb import credential_factory
  from ez_wsi_dicomweb import dicom_slide
  from ez_wsi_dicomweb import dicom_web_interface
  from ez_wsi_dicomweb import local_image
  from ez_wsi_dicomweb import patch_embedding
  from ez_wsi_dicomweb import patch_embedding_endpoints as endpoints
  from ez_wsi_dicomweb.ml_toolkit import dicom_path

  with predictor_cm as predictor:

    class Handler(BaseHTTPRequestHandler):
      def do_POST(self):  # pylint: disable=invalid-name
        body = self.rfile.read(int(self.headers['Content-Length']))
        result = answer(predictor, body.decode('utf-8'))
        out = json.dumps(result.get('body', {'error': 'INTERNAL_ERROR'}), default=_plain).encode()
        self.send_response(200 if 'body' in result else 500)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

      def log_message(self, *args):
        pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    google_url = f'http://127.0.0.1:{server.server_address[1]}/predict'

    def endpoints_for(**kw):
      return {
          'google': endpoints.PathFoundationsEmbeddingEndpoint(
              google_url, credential_factory=credential_factory.NoAuthCredentialsFactory(), **kw),
          'pathembed': endpoints.PathFoundationsEmbeddingEndpoint(
              pathembed_url,
              credential_factory=credential_factory.TokenPassthroughCredentialFactory(api_key), **kw),
      }

    def compare(name, make_patch, **kw):
      try:
        got = {}
        for side, endpoint in endpoints_for(**kw).items():
          got[side] = np.asarray(patch_embedding.get_patch_embedding(endpoint, make_patch()))
        diff = float(np.max(np.abs(got['google'] - got['pathembed'])))
        line = {'flow': name, 'max_abs_diff': diff}
      except Exception as err:  # pylint: disable=broad-except
        line = {'flow': name, 'error': f'{type(err).__name__}: {err}'}
      sys.stdout.write(json.dumps(line) + '\n')
      sys.stdout.flush()

    def slide(url, token=None):
      factory = (credential_factory.TokenPassthroughCredentialFactory(token) if token
                 else credential_factory.NoAuthCredentialsFactory())
      return dicom_slide.DicomSlide(dicom_web_interface.DicomWebInterface(factory),
                                    dicom_path.FromString(url))

    store_token = os.environ.get('PATHEMBED_COMPAT_STORE_TOKEN', '')
    for named in series_urls:
      tag, url = named.split('=', 1)
      if tag.startswith('protected'):
        # A store that answers only with the token: the client reads with it, and each server
        # must forward the request's bearer_token to read the patch at all.
        protected = slide(url, token=store_token)
        compare(f'DICOM patch, store that requires a bearer token ({tag})',
                lambda: protected.get_patch(protected.native_level, 10, 20, 224, 224,
                                            require_fully_in_source_image=True))
        continue
      ds = slide(url)
      level = ds.native_level
      compare(f'DICOM patch, native level ({tag})',
              lambda: ds.get_patch(level, 10, 20, 224, 224, require_fully_in_source_image=True))
      resized = level.resize(dicom_slide.ImageDimensions(level.width // 2, level.height // 2))
      compare(f'DICOM patch, level.resize to half ({tag})',
              lambda: ds.get_patch(resized, 13, 29, 224, 224, require_fully_in_source_image=True))
      compare(f'DICOM patch, SRGB normalisation ({tag})',
              lambda: ds.get_patch(level, 100, 60, 224, 224, require_fully_in_source_image=True),
              icc_profile_normalization=endpoints.IccProfileNormalization.SRGB)
      tokened = slide(url, token='store-token-for-the-test')
      compare(f'DICOM patch, store bearer token ({tag})',
              lambda: tokened.get_patch(tokened.native_level, 10, 20, 224, 224,
                                        require_fully_in_source_image=True))
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    compare('in-memory image (LocalImage)',
            lambda: local_image.LocalImage(pixels).get_patch(30, 40, 224, 224))
    compare('in-memory image resized to 500 x 375 (LocalImage)',
            lambda: local_image.LocalImage(
                pixels, image_dimensions=dicom_slide.ImageDimensions(500, 375)).get_patch(
                    100, 80, 224, 224))
    server.shutdown()


def main() -> None:
  if len(sys.argv) > 1 and sys.argv[1] == 'client':
    client(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    return
  predictor_cm, answer = _google(sys.argv[1])
  with predictor_cm as predictor:
    for line in sys.stdin:
      line = line.strip()
      if line:
        sys.stdout.write(json.dumps(answer(predictor, line), default=_plain) + '\n')
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
        for ds in _metadata(self, series):
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
    headers = {'Accept': 'application/dicom+json'}
    dwi.credentials().apply(headers)
    res = requests.get(f'{path}/metadata', headers=headers, timeout=60)
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


def _metadata(dwi, series: str):
  import requests
  headers = {'Accept': 'application/dicom+json'}
  dwi.credentials().apply(headers)
  res = requests.get(f'{series}/metadata', headers=headers, timeout=60)
  res.raise_for_status()
  return res.json()


def _plain(value):
  """numpy scalars and arrays in Google's answers, as JSON."""
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'{type(value).__name__} is not JSON')


if __name__ == '__main__':
  main()
