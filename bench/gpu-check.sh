#!/usr/bin/env bash
# The prepared GPU-machine check (README "GPU machine check"). The GPU machine has CUDA 13 (as
# Python wheels in /opt/torch/.venv), no Node and no network; each call to it carries at most
# 64 MiB, and files left outside the repository there survive between calls while it stays warm.
# So everything the check needs (Node, the compiled project, its production node_modules with only
# onnxruntime-node's linux-x64 files, and the CUDA provider from the npm registry) is packed here
# into one xz stream, split into parts, and carried one part per call; each call files its part
# outside the repository, and the call that completes the set unpacks it and runs the check.
#
#   bench/gpu-check.sh pack [--out DIR] [--part-mib N] [--payload DIR]   # here: parts + manifest + the plan
#   bench/gpu-check.sh                                                 # there, every call: receive, then run when complete
#   bench/gpu-check.sh dry-run [--payload DIR] [--part-mib N]          # here: pack, carry call by call into a temp folder, compare
#
# Environment here: GPU_CHECK_XZ_LEVEL (default 6). Environment there: GPU_CHECK_WORK (default /tmp/pathembed-gpu-check), GPU_CHECK_ARGS (extra
# arguments of bench/gpu-models.ts, e.g. "--batches 1,32 --min-seconds 2"), OUT (where the JSON goes).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CARRY_DIR="$ROOT/.gpu-carry"
WORK="${GPU_CHECK_WORK:-/tmp/pathembed-gpu-check}"
MANIFEST=manifest.sha256
# 64 MiB a call, less the repository's own files (about 2 MiB) and a margin.
DEFAULT_PART_MIB=56

fail() {
  echo "gpu-check: FAILED: $*" >&2
  exit 1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

TEMPS=()
trap 'rm -rf "${TEMPS[@]}"' EXIT
# Sets NEW_TEMP to a fresh folder removed on exit (not a $(...) subshell, which would lose TEMPS).
new_temp() {
  NEW_TEMP="$(mktemp -d)"
  TEMPS+=("$NEW_TEMP")
}

# --- here: staging -----------------------------------------------------------------------------

# The production dependency folders, with onnxruntime-node cut to its linux-x64 files.
stage_node_modules() {
  local dest="$1"
  mkdir -p "$dest"
  (cd "$ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2) | while read -r dir; do
    local rel="${dir#"$ROOT"/}"
    case "$rel" in node_modules/*) ;; *) continue ;; esac
    # Nested packages are copied with their parent.
    [[ "$rel" == node_modules/*/node_modules/* ]] && continue
    mkdir -p "$dest/$(dirname "$rel")"
    cp -a "$ROOT/$rel" "$dest/$rel"
  done
  local ort="$dest/node_modules/onnxruntime-node/bin"
  [ -d "$ort" ] || fail "onnxruntime-node is not installed here (npm ci first)"
  find "$ort" -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} +
  find "$ort" -mindepth 3 -maxdepth 3 -path '*/linux/*' ! -name x64 -exec rm -rf {} +
}

# The payload: node, the compiled project, its node_modules, the CUDA provider beside ORT.
stage_payload() {
  local stage="$1"
  command -v node >/dev/null || fail "node is not on PATH"
  mkdir -p "$stage/bin" "$stage/app"
  cp "$(command -v node)" "$stage/bin/node"
  (cd "$ROOT" && npx tsc -p tsconfig.json) || fail "the TypeScript build failed"
  cp -a "$ROOT/dist" "$ROOT/package.json" "$stage/app/"
  stage_node_modules "$stage/app"
  local ortdir
  ortdir="$(ls -d "$stage"/app/node_modules/onnxruntime-node/bin/napi-v*/linux/x64 | head -1)"
  (cd "$ROOT" && npx tsx scripts/gpu-install.ts --target "$ortdir" >/dev/null) ||
    fail "npm run gpu:install could not fetch or verify the CUDA provider"
}

cmd_pack() {
  local out="$CARRY_DIR" part_mib="$DEFAULT_PART_MIB" payload=""
  while (($#)); do
    case "$1" in
      --out) out="$2"; shift 2 ;;
      --part-mib) part_mib="$2"; shift 2 ;;
      --payload) payload="$2"; shift 2 ;;
      *) fail "pack: unknown argument $1" ;;
    esac
  done
  local tmp
  new_temp
  tmp="$NEW_TEMP"
  if [ -z "$payload" ]; then
    payload="$tmp/payload"
    stage_payload "$payload"
  fi
  rm -rf "$out"
  mkdir -p "$out"
  # One stream, so parts can be cut anywhere; -T0 uses every core here. Level 6 makes the fewest
  # parts (device calls); a lower GPU_CHECK_XZ_LEVEL packs much faster on a busy machine.
  tar -C "$payload" -cf - . | xz "-${GPU_CHECK_XZ_LEVEL:-6}" -T0 >"$tmp/payload.tar.xz"
  split -b "$((part_mib * 1024 * 1024))" -d -a 2 "$tmp/payload.tar.xz" "$out/part-"
  {
    echo "# pathembed gpu-check carry: the whole stream, then each part (sha256, bytes, name)"
    echo "$(sha "$tmp/payload.tar.xz") $(stat -c %s "$tmp/payload.tar.xz") payload.tar.xz"
    for p in "$out"/part-*; do echo "$(sha "$p") $(stat -c %s "$p") $(basename "$p")"; done
  } >"$out/$MANIFEST"
  cmd_plan "$out"
}

cmd_plan() {
  local out="${1:-$CARRY_DIR}"
  [ -f "$out/$MANIFEST" ] || fail "no $out/$MANIFEST: run bench/gpu-check.sh pack first"
  local parts
  mapfile -t parts < <(awk '!/^#/ && $3 != "payload.tar.xz" {print $3}' "$out/$MANIFEST")
  echo "gpu-check: ${#parts[@]} parts; make these calls back to back (the machine keeps files for 30 s):"
  local i=1
  for p in "${parts[@]}"; do
    echo "  call $i: run command 'bash bench/gpu-check.sh' carry [\".gpu-carry/$MANIFEST\", \".gpu-carry/$p\"] timeout_s $([ "$i" -eq "${#parts[@]}" ] && echo 540 || echo 120)"
    i=$((i + 1))
  done
}

# --- there: receiving ---------------------------------------------------------------------------

# Files the carried parts outside the repository, checks each, and unpacks when all are there.
# Prints what is still missing. Returns 0 when the payload is unpacked in $WORK/root.
cmd_receive() {
  local carried="${1:-$CARRY_DIR}"
  mkdir -p "$WORK/parts"
  [ -f "$carried/$MANIFEST" ] || fail "no $carried/$MANIFEST carried: name .gpu-carry/$MANIFEST in carry"
  cp "$carried/$MANIFEST" "$WORK/parts/$MANIFEST"
  local name want bytes
  while read -r want bytes name; do
    [[ "$want" == \#* || "$name" == payload.tar.xz ]] && continue
    if [ -f "$carried/$name" ]; then
      [ "$(sha "$carried/$name")" = "$want" ] ||
        fail "$name arrived with sha256 $(sha "$carried/$name"), the manifest says $want: carry it again"
      cp "$carried/$name" "$WORK/parts/$name.tmp" && mv "$WORK/parts/$name.tmp" "$WORK/parts/$name"
      echo "gpu-check: received $name ($bytes bytes)"
    fi
  done <"$WORK/parts/$MANIFEST"
  local missing=()
  while read -r want bytes name; do
    [[ "$want" == \#* || "$name" == payload.tar.xz ]] && continue
    if [ ! -f "$WORK/parts/$name" ] || [ "$(sha "$WORK/parts/$name")" != "$want" ]; then missing+=("$name"); fi
  done <"$WORK/parts/$MANIFEST"
  if ((${#missing[@]})); then
    echo "gpu-check: still missing: ${missing[*]} (next call: carry .gpu-carry/$MANIFEST and .gpu-carry/${missing[0]})"
    return 1
  fi
  local whole_sha whole_bytes
  read -r whole_sha whole_bytes _ < <(awk '$3 == "payload.tar.xz"' "$WORK/parts/$MANIFEST")
  local got
  got="$(cat "$WORK"/parts/part-* | sha256sum | cut -d' ' -f1)"
  [ "$got" = "$whole_sha" ] || fail "the reassembled stream has sha256 $got, the manifest says $whole_sha"
  rm -rf "$WORK/root" && mkdir -p "$WORK/root"
  cat "$WORK"/parts/part-* | xz -d -T0 | tar -C "$WORK/root" -xf - || fail "unpacking the payload failed"
  echo "gpu-check: payload unpacked into $WORK/root ($whole_bytes bytes compressed)"
}

# CUDA 13 libraries of the machine's PyTorch venv: every nvidia/*/lib folder of its wheels.
cuda_library_path() {
  local venv="${GPU_CHECK_VENV:-/opt/torch/.venv}"
  find "$venv" -path '*/site-packages/nvidia/*/lib' -type d 2>/dev/null | sort | paste -sd:
}

cmd_run() {
  local root="$WORK/root" out="${OUT:-$WORK/out}"
  mkdir -p "$out"
  [ -x "$root/bin/node" ] || fail "no unpacked payload in $root"
  export PATH="$root/bin:$PATH"
  local libs
  libs="$(cuda_library_path)"
  [ -n "$libs" ] || echo "gpu-check: no nvidia-* wheels under /opt/torch/.venv: relying on the loader's default path" >&2
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATHEMBED_EXECUTION_PROVIDER="${PATHEMBED_EXECUTION_PROVIDER:-cuda}" LOG_LEVEL="${LOG_LEVEL:-warn}"
  cd "$root/app"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/nvidia-smi.txt" 2>&1 || true
  echo "gpu-check: doctor"
  if ! node dist/src/cli/main.js doctor >"$out/doctor.json" 2>"$out/doctor.err"; then
    echo "gpu-check: FAILED at doctor; first problem:" >&2
    grep -m1 '^pathembed:' "$out/doctor.err" >&2 || head -5 "$out/doctor.err" >&2
    grep -o '"missing": \[[^]]*\]' "$out/doctor.json" >&2 || true
    exit 1
  fi
  echo "gpu-check: model and end-to-end figures"
  # shellcheck disable=SC2086 # GPU_CHECK_ARGS is a list of arguments
  if ! node dist/bench/gpu-models.js --out "$out/gpu-check.json" ${GPU_CHECK_ARGS:-} 2>"$out/gpu-models.err"; then
    echo "gpu-check: FAILED in bench/gpu-models; first error:" >&2
    grep -m1 -iE 'error|fail|cannot|not found' "$out/gpu-models.err" >&2 || tail -5 "$out/gpu-models.err" >&2
    exit 1
  fi
  tail -3 "$out/gpu-models.err"
  echo "gpu-check: figures in $out/gpu-check.json"
}

cmd_device() {
  if cmd_receive "$CARRY_DIR"; then cmd_run; fi
}

# --- here: the carry, rehearsed ----------------------------------------------------------------

cmd_dry_run() {
  local part_mib="$DEFAULT_PART_MIB" payload=""
  while (($#)); do
    case "$1" in
      --part-mib) part_mib="$2"; shift 2 ;;
      --payload) payload="$2"; shift 2 ;;
      *) fail "dry-run: unknown argument $1" ;;
    esac
  done
  local tmp
  new_temp
  tmp="$NEW_TEMP"
  local packed="$tmp/packed"
  if [ -n "$payload" ]; then cmd_pack --out "$packed" --part-mib "$part_mib" --payload "$payload" >/dev/null
  else cmd_pack --out "$packed" --part-mib "$part_mib" >/dev/null; fi
  local parts
  mapfile -t parts < <(awk '!/^#/ && $3 != "payload.tar.xz" {print $3}' "$packed/$MANIFEST")
  local limit=$((64 * 1024 * 1024)) repo_bytes
  repo_bytes="$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')"
  local i=0
  for p in "${parts[@]}"; do
    i=$((i + 1))
    # One call: a fresh .gpu-carry holding the manifest and this part only.
    local call="$tmp/call-$i/.gpu-carry"
    mkdir -p "$call"
    cp "$packed/$MANIFEST" "$packed/$p" "$call/"
    local bytes=$((repo_bytes + $(stat -c %s "$call/$p") + $(stat -c %s "$call/$MANIFEST")))
    ((bytes <= limit)) || fail "call $i would carry $bytes bytes, over the 64 MiB limit"
    echo "dry-run call $i/${#parts[@]}: $p, $bytes bytes with the repository"
    if GPU_CHECK_WORK="$tmp/device" WORK="$tmp/device" cmd_receive "$call"; then
      [ "$i" -eq "${#parts[@]}" ] || fail "complete before the last part"
    else
      [ "$i" -lt "${#parts[@]}" ] || fail "incomplete after the last part"
    fi
  done
  if [ -n "$payload" ]; then
    diff -r "$payload" "$tmp/device/root" >/dev/null || fail "the unpacked payload differs from the packed one"
  fi
  echo "dry-run: ${#parts[@]} calls, reassembled and unpacked into $tmp/device/root, sha256 checked"
  if [ -z "$payload" ]; then
    local ortdir
    ortdir="$(ls -d "$tmp"/device/root/app/node_modules/onnxruntime-node/bin/napi-v*/linux/x64 | head -1)"
    (cd "$tmp/device/root/app" && PATH="$tmp/device/root/bin:$PATH" node dist/src/cli/main.js doctor \
      --provider-folder "$ortdir" 2>&1 | grep -E '"pinned"|^pathembed:' | sort | uniq -c) || true
  fi
}

case "${1:-device}" in
  pack) shift; cmd_pack "$@" ;;
  plan) shift; cmd_plan "$@" ;;
  dry-run) shift; cmd_dry_run "$@" ;;
  receive) shift; cmd_receive "$@" ;;
  run) cmd_run ;;
  device) cmd_device ;;
  *) fail "unknown subcommand $1 (pack, plan, dry-run, receive, run)" ;;
esac
