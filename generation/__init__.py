"""Build time: plan, train (MPI), merge and fit the surrogate bundles that ``jahs_gym`` serves."""
