#!/usr/bin/env bash
# Refit and reship an embedded bundle from the committed shards of its run:
#   bash generation/refit_embedded.sh fashion_mnist [`python -m generation fit` options]
# Without options: the shipped bundles' recipe (below). The manifest records what a bundle was fitted with.
set -euo pipefail
TASK=${1:?usage: refit_embedded.sh TASK [fit options]}
shift
SHIPPED=(--trials 4 --parsimony "0.01,train_loss=0.03,train_acc=0.03,valid_loss=0.03,test_loss=0.03")
[ $# -eq 0 ] && set -- "${SHIPPED[@]}"
RUN=data/runs/$TASK
STAGE=$(mktemp -d)
python -m generation merge "$RUN" -o "$STAGE/table.parquet"
python -m generation fit "$STAGE/table.parquet" -o "$STAGE/$TASK" --run-dir "$RUN" --ship-table "$@"
rm -rf "jahs_gym/data/$TASK"
mv "$STAGE/$TASK" "jahs_gym/data/$TASK"
rm -rf "$STAGE"
du -sh "jahs_gym/data/$TASK"
