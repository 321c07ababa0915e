"""Local catalog cross-matching: HEALPix index, catalog preparation, matching and alert context flags."""

from lenga.xmatch.catalog import CatalogSpec, PrepareReport, load_catalog_specs, prepare_catalog, read_catalog
from lenga.xmatch.context import known_sso_lsst, known_sso_ztf, probable_star
from lenga.xmatch.match import crossmatch, match_positions, output_schema

__all__ = [
    "CatalogSpec",
    "PrepareReport",
    "crossmatch",
    "known_sso_lsst",
    "known_sso_ztf",
    "load_catalog_specs",
    "match_positions",
    "output_schema",
    "prepare_catalog",
    "probable_star",
    "read_catalog",
]
