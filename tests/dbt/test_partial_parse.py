"""dbt's saved parse is a cache: a damaged one never fails a build, a home's own is stamped for it.

The end-to-end check (a copied home's first build reuses the saved parse, through ``placelink build`` and Dagster)
is in tests/dbt/test_build_through_dagster.py.
"""

from __future__ import annotations

import shutil

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=512))
def test_a_damaged_saved_parse_is_left_for_dbt_to_replace_and_never_raises(tmp_path, junk):
    settings = get_settings(home=tmp_path / "home", env="local")
    target = dbt_runner.target_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    (target / dbt_runner.PARTIAL_PARSE).write_bytes(junk)
    (target / dbt_runner.PARSE_MADE_FOR).write_text("/somewhere/else/warehouse.duckdb")

    assert dbt_runner.prepare_partial_parse(settings) == target / dbt_runner.PARTIAL_PARSE
    # untouched (dbt parses in full and writes a good one), and not claimed to be this home's
    assert (target / dbt_runner.PARTIAL_PARSE).read_bytes() == junk
    assert not (target / dbt_runner.PARSE_MADE_FOR).exists()


def test_a_new_home_starts_from_the_projects_parse_stamped_as_its_own(tmp_path):
    seed = dbt_runner.DBT_PROJECT_DIR / "target" / dbt_runner.PARTIAL_PARSE
    assert seed.exists(), "make setup runs `dbt parse`, which writes the project's saved parse"
    settings = get_settings(home=tmp_path / "home", env="local")

    state = dbt_runner.prepare_partial_parse(settings)
    assert state == dbt_runner.target_dir(settings) / dbt_runner.PARTIAL_PARSE and state.exists()
    assert (state.parent / dbt_runner.PARSE_MADE_FOR).read_text() == str(settings.warehouse_db)
    # the stamp is dbt's own hash of this home's profile, so the same home asks for no second rewrite
    from dbt.contracts.graph.manifest import Manifest
    from dbt.parser.manifest import extended_mashumuro_decoder

    manifest = Manifest.from_msgpack(state.read_bytes(), decoder=extended_mashumuro_decoder)
    assert manifest.state_check.profile_hash == dbt_runner._profile_hash(settings)
    # a moved home: a new path is a new hash
    moved = get_settings(home=tmp_path / "moved", env="local")
    shutil.copytree(settings.home, moved.home)
    assert dbt_runner._profile_hash(moved) != dbt_runner._profile_hash(settings)
    dbt_runner.prepare_partial_parse(moved)
    again = Manifest.from_msgpack((dbt_runner.target_dir(moved) / dbt_runner.PARTIAL_PARSE).read_bytes(),
                                  decoder=extended_mashumuro_decoder)
    assert again.state_check.profile_hash == dbt_runner._profile_hash(moved)
