"""Print the lake's tables: every column with its type and meaning.

    ./spark-submit.sh schema [TABLE ...]
"""

from __future__ import annotations

import argparse

from lenga import schema


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", default=list(schema.TABLES), help=f"any of {list(schema.TABLES)}")
    args = parser.parse_args(argv)
    for name in args.tables:
        table = schema.TABLES[name]
        print(f"\n{name}  (key: {', '.join(schema.TABLE_KEYS[name])}; partitioned by {schema.PARTITION_COLUMN})")
        descriptions = schema.column_descriptions(table)
        for field in table:
            print(f"  {field.name:<22} {str(field.type):<12} {descriptions[field.name]}")


if __name__ == "__main__":
    main()
