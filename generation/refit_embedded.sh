#!/usr/bin/env bash
# Refit and reship an embedded bundle from the committed shards of its run:
#   bash generation/refit_embedded.sh fashion_mnist [extra `python -m generation fit` options]
set -euo pipefail
TASK=${1:?usage: refit_embedded.sh TASK [fit options]}
shift
RUN=data/runs/$TASK
STAGE=$(mktemp -d)
python -m generation merge "$RUN" -o "$STAGE/table.parquet"
python -m generation fit "$STAGE/table.parquet" -o "$STAGE/$TASK" --run-dir "$RUN" --ship-table "$@"
rm -rf "jahs_gym/data/$TASK"
mv "$STAGE/$TASK" "jahs_gym/data/$TASK"
rm -rf "$STAGE"
du -sh "jahs_gym/data/$TASK"
