"""The harness: one Hydra job = one tracked MLflow run (harness.job), sweeps, data, checkpoints."""
import secrets

from omegaconf import OmegaConf

# conf/hydra/default.yaml names a sweep's folder ${now:...}_${sweep_suffix:}, so that two sweeps
# started in the same second never share one. Registered on import of this package because
# every process that resolves a job's config (the launching one, joblib workers, SLURM nodes)
# imports it to run the job; cached like Hydra's `now`, whose resolver cache Hydra copies into
# every job's config, so that all jobs of a sweep see the same name.
OmegaConf.register_new_resolver("sweep_suffix", lambda: secrets.token_hex(3), use_cache=True, replace=True)
