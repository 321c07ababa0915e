"""spark-submit entry points, run as ``./spark-submit.sh <job> ...``."""
