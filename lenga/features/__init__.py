"""Light-curve features of ALeRCE's classifier families (Sánchez-Sáez et al. 2021, AJ 161, 141).

``extract_features`` turns the detections (and non-detections) of many objects into one wide row
per object; ``FEATURE_SCHEMA`` declares its columns for Spark with the default configuration.
"""

from lenga.features.config import FeatureConfig, load_feature_config
from lenga.features.extract import (
    FAMILIES,
    FEATURE_VERSION,
    extract_features,
    family_columns,
    feature_descriptions,
    feature_schema,
    profile,
)

#: Output schema for the default configuration (every column carries its description as metadata).
FEATURE_SCHEMA = feature_schema(FeatureConfig())
#: Output column -> description for the default configuration.
FEATURE_DESCRIPTIONS = feature_descriptions(FeatureConfig())

__all__ = ["FAMILIES", "FEATURE_DESCRIPTIONS", "FEATURE_SCHEMA", "FEATURE_VERSION", "FeatureConfig",
           "extract_features", "family_columns", "feature_descriptions", "feature_schema", "load_feature_config", "profile"]
