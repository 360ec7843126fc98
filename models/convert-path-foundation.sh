#!/usr/bin/env bash
# Converts Google's Path Foundation (Hugging Face: google/path-foundation, a TensorFlow
# SavedModel) to an ONNX file that pathembed serves in place of the synthetic model.
#
# Not run in this repository's CI: the weights are gated (accept the Health AI Developer
# Foundations terms on the model page, then `huggingface-cli login`), and the conversion needs
# Python with TensorFlow. Tested tool versions: see README.md in this folder.
#
# Usage:
#   models/convert-path-foundation.sh [SAVED_MODEL_DIR] [OUTPUT_ONNX]
#     SAVED_MODEL_DIR  folder holding saved_model.pb; downloaded there when it has none
#                      (default: models/build/path-foundation-savedmodel)
#     OUTPUT_ONNX      default: models/build/path-foundation.onnx
#
# Prerequisites (a virtual environment is advised):
#   pip install "tensorflow>=2.15,<2.17" "tf2onnx>=1.16" "huggingface_hub>=0.23"
#
# Then point the service at the result:
#   export PATHEMBED_MODEL_PATH=$PWD/models/build/path-foundation.onnx
#   npx tsx src/cli/main.ts model info     # checks the contract, prints sha256 and provider
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
saved_model_dir="${1:-$here/build/path-foundation-savedmodel}"
output="${2:-$here/build/path-foundation.onnx}"
# Opset 17 is what the synthetic model uses and what ONNX Runtime 1.30 runs best-tested.
opset=17

if [[ ! -f "$saved_model_dir/saved_model.pb" ]]; then
  echo "Downloading google/path-foundation into $saved_model_dir (needs accepted terms and a HF login)" >&2
  huggingface-cli download google/path-foundation --local-dir "$saved_model_dir"
fi

mkdir -p "$(dirname "$output")"
# serving_default takes `inputs` float32 [N,224,224,3] (RGB/255) and returns `output_0` [N,384];
# the renames pin those names in case the converter derives others from the TensorFlow graph.
python -m tf2onnx.convert \
  --saved-model "$saved_model_dir" \
  --signature_def serving_default \
  --opset "$opset" \
  --rename-inputs inputs \
  --rename-outputs output_0 \
  --output "$output"

echo "Wrote $output" >&2
echo "sha256: $(sha256sum "$output" | cut -d' ' -f1)" >&2
echo "Next: PATHEMBED_MODEL_PATH=$output npx tsx src/cli/main.ts model info" >&2
