#!/usr/bin/env bash
# Times the Python reference of the seed protocol (tests/py/seed_statistic.py, a port of RiVEG's
# statistic.py with the same quadratic matching) on the released files, for the comparison with
# `riveg-bench eval` in benches/README.md. Needs .venv (scripts/install-python-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
R=../shared/datasets/riveg-release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A REC boxes file with one box per VE-positive line (the release ships none).
.venv/bin/python - "$R/OFAVE_to_OFAREC_augment.txt" "$tmp/rec.json" <<'PY'
import json, sys
uids = [l.split("###")[0].split("Imageid:")[1] for l in open(sys.argv[1], encoding="utf-8") if l.strip() and l.rstrip()[-1] != "0"]
json.dump([{"uniq_id": u, "box": [0.0, 0.0, 10.0, 10.0]} for u in uids], open(sys.argv[2], "w"))
PY
for task in mner gmner; do
  start=$(date +%s.%N)
  .venv/bin/python tests/py/seed_statistic.py "$R/GMNER_finall_label.txt" "$R/OFAVE_to_OFAREC_augment.txt" "$tmp/rec.json" $task >/dev/null
  end=$(date +%s.%N)
  echo "python seed protocol ($task): $(echo "$end - $start" | bc) s"
done
