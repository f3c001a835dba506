#!/bin/bash
# Example SLURM job: train a jahs-gym plan on many CPU nodes, one MPI rank per core, one torch thread per rank.
# Submit the same script again (or make it a job array with dependencies) until the run is complete:
# every run resumes, skipping finished tasks and continuing partial ones from their checkpoints.
#
#   python -m generation plan --task fashion_mnist --tasks 20000 --max-epochs 200 --out $SCRATCH/jahs_fmnist
#   sbatch generation/slurm_example.sh $SCRATCH/jahs_fmnist
#
#SBATCH --job-name=jahs-gym-gen
#SBATCH --nodes=16
#SBATCH --ntasks-per-node=64          # one rank per physical core
#SBATCH --cpus-per-task=1
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail
RUN_DIR=${1:?usage: sbatch slurm_example.sh RUN_DIR}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Stop claiming new tasks 30 minutes before the wall time so running tasks can finish and write shards.
LIMIT=$(( 12 * 3600 - 1800 ))
srun --mpi=pmi2 python -m generation run "$RUN_DIR" --threads 1 --time-limit "$LIMIT"
# Afterwards: python -m generation merge "$RUN_DIR" -o table.parquet && python -m generation fit table.parquet -o bundle/
