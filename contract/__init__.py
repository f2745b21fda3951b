"""The MLflow record of a run: the names a job writes (harness) and the reports read (reports).

One module so that the writer and the reader cannot drift apart: both import these names and
neither spells them. It imports nothing, so every package may import it (docs/design.md,
"Rooms"). What each name holds is said beside it; docs/design.md shows a whole record.
"""
from __future__ import annotations

# -- tags every job's run carries (harness.job.base_tags) ------------------------------------
MODEL = "model"  # conf/model/<name>.yaml's name
DATASET = "dataset"
DEVICE = "device"  # cpu | gpu
THREADS = "threads"  # the threads the model really ran on (may differ from train.threads)
SWEEP_ID = "sweep_id"  # the Hydra sweep folder of a -m sweep, the run folder of a single job
JOB_NUM = "job_num"  # the job's number in its sweep
STATUS = "status"  # one of STATUSES
SKIP_REASON = "skip_reason"  # why a skipped job did not run
FAILURE = "failure"  # the error of a failed or killed job
STOPPED_BY = "stopped_by"  # the signal that stopped a killed job
CONFIG_HASH = "config_hash"  # the job's identity: what decides reuse and resume (harness.resume)
REPEAT_GROUP = "repeat_group"  # config_hash without the seed: the repeats of one job share it
HEARTBEAT = "heartbeat"  # a RUNNING job's proof of life (harness.resume)
CHECKPOINT_DIR = "checkpoint_dir"  # where the job's checkpoints are (harness.job_state)
RESUMES = "resumes"  # how many times the run was continued after a stop
KIND = "kind"  # KIND_SWEEP on a sweep's parent run; absent on a training run
GIT_REV = "git_rev"
CPU_MODEL = "cpu_model"
GPU_MODEL = "gpu_model"
OPTIMIZER = "optimizer"  # the Adam a model ran: adam_lazy | adam_dense

KIND_SWEEP = "sweep"
STATUSES: tuple[str, ...] = ("running", "finished", "skipped", "failed", "killed")

# -- params -----------------------------------------------------------------------------------
# The resolved config is logged flat (model.params.K, train.threads ...); these are the ones the
# reports give a meaning to.
MODEL_ROLE = "model.role"  # how the reports compare a model: one of ROLES (conf/model/*.yaml)
MODEL_COLOUR = "model.colour"  # its colour in every figure
MODEL_MARKER = "model.marker"  # its matplotlib marker
RESUME_LEASE = "resume_lease"  # prefix of the write-once param that elects who continues a run

# slide: a SLIDE variant, the method under test (its speed-ups are computed against each
# baseline); dense: a full-softmax baseline; sampled: a sampled-softmax baseline.
ROLES: tuple[str, ...] = ("slide", "dense", "sampled")
BASELINE_ROLES: tuple[str, ...] = ("dense", "sampled")

# -- metrics ----------------------------------------------------------------------------------
EVAL_P_AT_1 = "eval/p_at_1"  # on the fixed evaluation subset, at every evaluation
EVAL_P_AT_5 = "eval/p_at_5"
TRAIN_CLOCK = "time/train_s"  # the training clock (data, evaluation and checkpoints excluded)
TRAIN_LOSS = "train/loss"
FINAL_P_AT_1 = "final/p_at_1"  # on the whole test set at the end
FINAL_TRAIN_S = "final/train_s"
FINAL_SAMPLES_PER_S = "final/samples_per_s"
PEAK_RSS_MB = "mem/peak_rss_mb"
