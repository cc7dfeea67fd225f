"""``placelink-partner``: the partner's command line (standard library argparse: no extra dependency).

    placelink-partner key-check [--secret-file F]
    placelink-partner encode --contract police.yml --feed person_records --export export.csv --out drop/
                             [--date YYYY-MM-DD] [--gazetteer gazetteer.csv --postcodes postcodes.csv]
                             [--report quarantine/] [--secret-file F] [--strict]

The secret comes from ``--secret-file`` or ``PLACELINK_PARTNER_SECRET``. Errors say what, where and how to fix,
and never quote a value from the export.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="placelink-partner", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    kc = sub.add_parser("key-check", help="print the key check value of the shared secret (for the contract)")
    kc.add_argument("--secret-file", type=Path)
    enc = sub.add_parser("encode", help="validate, match and encode one export into an encoded drop")
    enc.add_argument("--contract", type=Path, required=True, help="the partner's feed contract (YAML)")
    enc.add_argument("--feed", required=True, help="the feed id in the contract")
    enc.add_argument("--export", type=Path, required=True, help="the native export file")
    enc.add_argument("--out", type=Path, required=True, help="folder for the drop and its manifest")
    enc.add_argument("--date", type=dt.date.fromisoformat, help="drop date (default today)")
    enc.add_argument("--gazetteer", type=Path, help="gazetteer CSV (uprn, saon, paon, street, ..., lsoa_code)")
    enc.add_argument("--postcodes", type=Path, help="postcode directory CSV (postcode, lsoa_code, ...)")
    enc.add_argument("--report", type=Path, help="folder for the quarantine report (stays with you)")
    enc.add_argument("--secret-file", type=Path)
    enc.add_argument("--strict", action="store_true", help="send nothing when any row is quarantined")
    return p


def main(argv: list[str] | None = None) -> int:
    from orchestration.lib.errors import PlacelinkError
    from orchestration.lib.matching.encoding import key_check_value, load_secret

    args = _parser().parse_args(argv)
    try:
        secret = load_secret(args.secret_file)
        if args.command == "key-check":
            print(key_check_value(secret))
            return 0
        from orchestration.lib.partner_drop import encode_export

        manifest = encode_export(args.contract, args.feed, args.export, args.out, secret, drop_date=args.date,
                                 gazetteer=args.gazetteer, postcodes=args.postcodes, report_dir=args.report)
        if args.strict and manifest["rows_quarantined"]:
            for name in (manifest["file"], f"{manifest['drop_date']}.manifest.json"):
                (Path(args.out) / name).unlink(missing_ok=True)
            raise PlacelinkError(f"{manifest['rows_quarantined']} row(s) failed the contract; nothing was written "
                                 "to send (--strict)", where=str(args.export),
                                 fix="fix the rows listed in the quarantine report and run again")
    except PlacelinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: manifest[k] for k in ("file", "rows_received", "rows_encoded", "rows_quarantined",
                                               "lsoa_matched", "key_check")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
