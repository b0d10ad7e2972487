#!/usr/bin/env bash
# The paper's grid on your own corpus: its audio + text backbone pairs (Tables 2 and 3) x the four
# configurations transfer, transfer-moe, contrastive-moe, hilbert (`hilbert evaluate`'s default)
# x every task of labels.csv, with 25-fold cross-validation (METHOD.md §8).
#
#   examples/run_paper_grid.sh CORPUS_DIR [table2|table3|all]
#
# Settings, from the environment:
#   WORKSPACE=DIR       workspace (default ./hilbert-work; reports land in DIR/runs/)
#   FOLDS=25            folds of the cross-validation
#   TASKS=all           tasks, e.g. TASKS=diagnosis,severity
#   PAIRS="text:audio"  your own pairs instead of the paper's, e.g. PAIRS="minilm:whisper-tiny mpnet:hubert"
#   ALLOW_DOWNLOAD=1    fetch backbone weights that are not on this machine yet, once (the paper's
#                       backbones are several GB in all); without it nothing touches the network
#   DRY_RUN=1           print the commands instead of running them
# One report per pair: WORKSPACE/runs/paper-TEXT-AUDIO/report.md. Finished runs are kept in the workspace,
# so an interrupted or extended grid does not redo them.
set -euo pipefail

usage="usage: $0 CORPUS_DIR [table2|table3|all]"
corpus=${1:?$usage}
grid=${2:-all}

# text:audio, as the paper pairs them (`hilbert backbones` lists the aliases and what is on this machine)
TABLE2="tinybert:hubert tinybert:wav2vec2 tinybert:conformer mpnet:hubert roberta:hubert roberta:wav2vec2"  # parent data
TABLE3="tinybert:whisper-medium minilm12:spectrogram minilm12:whisper-medium distilroberta:wav2vec2 roberta:wav2vec2 t5:whisper-medium"  # offspring data
case $grid in
  table2) pairs=$TABLE2 ;;
  table3) pairs=$TABLE3 ;;
  all) pairs="$TABLE2 $TABLE3" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
pairs=${PAIRS:-$pairs}

run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then echo "$*"; else "$@"; fi
}

ws=(-w "${WORKSPACE:-hilbert-work}")
download=()
if [[ "${ALLOW_DOWNLOAD:-0}" == 1 ]]; then download=(--allow-download); fi

run hilbert segment "$corpus" "${ws[@]}" ${download[@]+"${download[@]}"}
for pair in $(printf '%s\n' $pairs | awk '!seen[$0]++'); do  # each pair once (roberta:wav2vec2 is in both tables)
  text=${pair%%:*}
  audio=${pair##*:}
  run hilbert evaluate --task "${TASKS:-all}" --audio "$audio" --text "$text" --folds "${FOLDS:-25}" \
    --name "paper-$text-$audio" "${ws[@]}" ${download[@]+"${download[@]}"}
done
