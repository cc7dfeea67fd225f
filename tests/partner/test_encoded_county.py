"""The tiny synthetic county's people, every person feed, through placelink-partner: nothing clear leaves.

One month of drops (one per person feed, every format: CSV in three encodings, Excel, JSON lines) encoded with the
real contracts switched to encoded linkage; each drop passes the platform's check, and no row of any drop holds
its own person's name, date of birth, postcode or NHS number, in any cell, in any common spelling."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import yaml

from orchestration.lib.contracts import FEEDS_DIR, load_contract
from orchestration.lib.feeds.load import feed_drops, parse_file
from orchestration.lib.governance.erasure import Exclusions
from orchestration.lib.matching.encoding import SCHEME, key_check_value
from orchestration.lib.partner_drop import encode_export, verify_drop
from tests.partner.conftest import SECRET

MONTH = "2025-06-01"


def _words(cell: str) -> set[str]:
    text = cell.lower()
    return {text, text.replace(" ", ""), *re.split(r"[^a-z0-9/\-]+", text)}


def test_whole_tiny_county_month_encodes_with_no_clear_identifier(tiny_county, tmp_path):
    encoded_feeds = 0
    for path in sorted(FEEDS_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for feed in data["feeds"]:
            feed["linkage"] = {"mode": "encoded", "scheme": SCHEME, "key_check": key_check_value(SECRET)}
        contract_path = tmp_path / "contracts" / path.name
        contract_path.parent.mkdir(exist_ok=True)
        contract_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        # the partner's native exports are named by the contract as it stands (an encoded feed lands as .csv)
        native = {f.id: f for f in load_contract(path).feeds}
        for feed in load_contract(contract_path).feeds:
            if feed.person is None:
                continue
            drops = feed_drops(tiny_county / "landing", native[feed.id]).get(MONTH)
            assert drops, f"the tiny county has no {MONTH} drop of {feed.source}"
            export = drops[0]
            out = tmp_path / "outbox" / feed.partner / feed.id
            manifest = encode_export(contract_path, feed.id, export, out, SECRET,
                                     drop_date=dt.date.fromisoformat(export.name[:10]),
                                     gazetteer=tiny_county / "reference" / "gazetteer.csv",
                                     postcodes=tiny_county / "reference" / "postcodes.csv",
                                     report_dir=tmp_path / "quarantine")
            drop = verify_drop(out / f"{manifest['drop_date']}.manifest.json", feed).set_index("record_id")
            clear = parse_file(feed, export, export.name, "-", dt.date.fromisoformat(MONTH), dt.datetime.now(),
                               frozenset(), Exclusions()).people.to_pandas()
            assert manifest["rows_encoded"] == len(clear) == len(drop) > 0
            assert manifest["rows_encoded"] + manifest["rows_quarantined"] == manifest["rows_received"]
            if drop.index[0].split(":", 1)[1] != clear["record_id"].iloc[0].split(":", 1)[1]:
                assert not set(drop.index) & set(clear["record_id"])  # a tokenised record id (a pupil number)
                continue
            leaks = []
            for rec in clear.itertuples():
                rows = drop.loc[[rec.record_id]]  # a record sent twice (a duplicate row) has two
                words = set().union(*(_words(str(v)) for v in rows.stack().dropna().tolist()))
                ids = {str(x).lower() for x in (rec.given_name, rec.family_name, rec.nhs_number)
                       if isinstance(x, str) and len(x) > 2}
                ids |= {w for x in (rec.given_name, rec.family_name) if isinstance(x, str) for w in x.lower().split()
                        if len(w) > 2}
                if isinstance(rec.postcode, str):
                    ids |= {rec.postcode.lower(), rec.postcode.lower().replace(" ", "")}
                if isinstance(rec.date_of_birth, dt.date) and not pd.isna(rec.date_of_birth):
                    d = rec.date_of_birth
                    ids |= {d.isoformat(), d.strftime("%d/%m/%Y")}
                leaks += [(rec.record_id, col) for col in ids & words]
            assert not leaks, f"{feed.source}: clear identifiers in the drop ({len(leaks)} cells)"
            encoded_feeds += 1
    assert encoded_feeds >= 6
