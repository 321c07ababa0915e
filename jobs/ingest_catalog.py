"""Ingest a local catalog into the lake for the stream's cross-match.

    ./spark-submit.sh ingest-catalog --name NAME [--lake DIR] [--catalogs FILE]
    ./spark-submit.sh ingest-catalog --name NAME --path P --format parquet|csv|fits|delta \\
        --ra-column RA --dec-column DEC --id-column ID --radius ARCSEC --mode nearest|all \\
        --version V [--columns a,b,c] [--epoch 2016.0 --target-epoch 2025.5 --pmra-column pmra \\
        --pmdec-column pmdec] [--lake DIR]

The first form takes the catalog's declaration from conf/catalogs.yaml (a ``{lake}`` in its path is
the lake root); the second declares an ad-hoc catalog on the command line (add it to
conf/catalogs.yaml for the stream to use it). The catalog is read (Parquet, CSV, FITS table via
astropy, Delta), validated (missing columns, RA outside [0, 360), Dec outside [-90, 90] are errors;
NaN coordinates are dropped and counted), indexed with HEALPix at the order of its match radius and
written to ``<lake>/catalogs/<name>`` sorted by that index, with its version. Ingesting the same
version again does nothing. Example, a Gaia DR3 export:

    ./spark-submit.sh ingest-catalog --name gaia_dr3      # declared in conf/catalogs.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lenga.config import add_config_arguments, load_config
from lenga.io.lake import open_lake
from lenga.io.session import build_session
from lenga.stream.catalogs import IngestResult, ingest_catalog
from lenga.xmatch.catalog import DEFAULT_CATALOGS_FILE, CatalogSpec, load_catalog_specs

# Command-line options of an ad-hoc catalog, by CatalogSpec field.
AD_HOC = {"path": str, "format": str, "ra_column": str, "dec_column": str, "id_column": str, "radius": float,
          "mode": str, "version": str, "columns": str, "epoch": float, "target_epoch": float,
          "pmra_column": str, "pmdec_column": str}
AD_HOC_REQUIRED = ("path", "format", "ra_column", "dec_column", "id_column", "radius", "mode", "version")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--name", required=True, help="catalog name (declared in --catalogs, or ad hoc)")
    parser.add_argument("--lake", help="lake root (default: lake.root of the configuration)")
    parser.add_argument("--catalogs", default=str(DEFAULT_CATALOGS_FILE), help="catalog declarations (YAML)")
    for option, kind in AD_HOC.items():
        parser.add_argument("--" + option.replace("_", "-"), type=kind,
                            help="ad-hoc catalog: comma-separated column names" if option == "columns" else None)
    return parser.parse_args(argv)


def catalog_spec(args: argparse.Namespace, lake_root: str) -> CatalogSpec:
    """The declared spec of ``--name``, or the ad-hoc one when ``--path`` is given."""
    given = {k: getattr(args, k) for k in AD_HOC if getattr(args, k) is not None}
    if not given:
        specs, _ = load_catalog_specs(args.catalogs)
        named = {spec.name: spec for spec in specs}
        if args.name not in named:
            raise ValueError(f"catalog {args.name!r} is not declared in {args.catalogs} (declared: {sorted(named)}); "
                             "declare it there or give --path and the other ad-hoc options")
        return named[args.name].in_lake(lake_root)
    missing = [f"--{k.replace('_', '-')}" for k in AD_HOC_REQUIRED if k not in given]
    if missing:
        raise ValueError(f"an ad-hoc catalog needs {missing}")
    values = {("radius_arcsec" if k == "radius" else k): v for k, v in given.items()}
    if "columns" in values:
        values["columns"] = [c.strip() for c in values["columns"].split(",") if c.strip()]
    return CatalogSpec.from_dict({"name": args.name, **values}).in_lake(lake_root)


def describe(result: IngestResult) -> str:
    """The lines the job prints: what was written (the PrepareReport) or why nothing was."""
    if result.skipped:
        return f"[lenga] catalog {result.catalog!r} version {result.version!r} already in {result.table_path}: nothing to do"
    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(result.report).items())
    return (f"[lenga] catalog {result.catalog!r} version {result.version!r} written to {result.table_path} "
            f"({result.write.files} files, {result.write.seconds:.1f} s)\n[lenga] {fields}")


def main(argv=None, spark=None) -> int:
    """Run the job; with ``spark`` given (tests, notebooks) that session is used and left running."""
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides, {"lake": {"root": args.lake}} if args.lake else None)
    session = spark or build_session("lenga-ingest-catalog", config.spark)
    try:
        spec = catalog_spec(args, config.lake.root)
        result = ingest_catalog(open_lake(session, config.lake.root, config.lake.backend), spec)
    except ValueError as err:  # a bad declaration or a bad catalog: the message says which and why
        print(f"[lenga] {err}", file=sys.stderr)
        return 2
    finally:
        if spark is None:
            session.stop()
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
