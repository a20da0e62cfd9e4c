"""Settings from the environment: every numeric variable finite and in its range, refused with a message that
names the variable, the value and what is allowed, as a SettingsError (never SystemExit) for the CLI to report."""

import math
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.settings import Settings, SettingsError, Topics, bounds_of, env_var


def numeric_variables() -> list[str]:
    return [env_var(f) or "" for f in fields(Settings) if bounds_of(f) is not None]


def test_an_empty_environment_gives_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_every_variable_is_read():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b:1",
        "POA_APP_ID": "app",
        "POA_DATA_DIR": "/d",
        "POA_METRICS_PORT": "0",
        "POA_SCHEMA_REGISTRY_URL": "http://r",
        "KAFKA_CLIENT_CONFIG": "client.properties",
        "POA_WINDOW_MINUTES": " 45 ",
        "POA_LEAD_IN_MINUTES": "+2",
        "POA_MAX_FUTURE_DAYS": "7",
        "POA_MAX_HOLD_SECONDS": "1.5e1",
        "POA_PARTITION_CHECK_SECONDS": "0.5",
        "POA_EVIDENCE_BEFORE_MINUTES": "15",
        "POA_EVIDENCE_AFTER_MINUTES": "5",
        "POA_STORM_MIN_HANS": "0",
        "POA_EVIDENCE_GRACE_SECONDS": "12.5",
        "POA_MAX_CLOCK_AHEAD_SECONDS": "86400",
        "POA_LOG_FORMAT": "json",
        "POA_TOPIC_ALERTS": "a",
    }
    assert Settings.from_env(env) == Settings(
        bootstrap_servers="b:1",
        app_id="app",
        data_dir="/d",
        metrics_port=0,
        schema_registry_url="http://r",
        client_config_file="client.properties",
        topics=replace(Topics(), alerts="a"),
        window_minutes=45,
        lead_in_minutes=2,
        max_future_days=7,
        max_hold_seconds=15.0,
        partition_check_seconds=0.5,
        evidence_before_minutes=15,
        evidence_after_minutes=5,
        storm_min_hans=0,
        evidence_grace_seconds=12.5,
        max_clock_ahead_seconds=86400,
        log_format="json",
    )


def test_an_empty_variable_means_the_default():
    assert Settings.from_env({"POA_METRICS_PORT": "", "POA_APP_ID": "", "POA_LOG_FORMAT": ""}) == Settings()


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("POA_MAX_HOLD_SECONDS", "nan", "POA_MAX_HOLD_SECONDS='nan' is not a number from 0 to 3600 (seconds"),
        ("POA_MAX_HOLD_SECONDS", "inf", "POA_MAX_HOLD_SECONDS='inf' is not a number from 0 to 3600"),
        ("POA_MAX_HOLD_SECONDS", "-Infinity", "is not a number from 0 to 3600"),
        ("POA_MAX_HOLD_SECONDS", "1e999", "POA_MAX_HOLD_SECONDS='1e999' is not a number"),  # overflows to inf
        ("POA_MAX_HOLD_SECONDS", "3601", "POA_MAX_HOLD_SECONDS='3601' is out of range: expected a number from 0 to"),
        ("POA_MAX_HOLD_SECONDS", "-1", "is out of range"),
        ("POA_MAX_HOLD_SECONDS", "1_0", "is not a number"),
        ("POA_MAX_HOLD_SECONDS", "\u0661\u0660", "is not a number"),  # Arabic-Indic: float() takes them
        (
            "POA_METRICS_PORT",
            "70000",
            "POA_METRICS_PORT='70000' is out of range: expected a whole number from 0 to 65535",
        ),
        ("POA_METRICS_PORT", "-1", "POA_METRICS_PORT='-1' is out of range"),
        ("POA_METRICS_PORT", "9108.0", "POA_METRICS_PORT='9108.0' is not a whole number from 0 to 65535"),
        ("POA_METRICS_PORT", "9\u00b2", "is not a whole number"),  # superscript two
        ("POA_METRICS_PORT", "\uff19\uff11\uff10\uff18", "is not a whole number"),  # full-width
        ("POA_METRICS_PORT", "9" * 5000, "is not a whole number"),  # more digits than int() converts
        (
            "POA_PARTITION_CHECK_SECONDS",
            "0",
            "POA_PARTITION_CHECK_SECONDS='0' is out of range: expected a number from 0.5",
        ),
        ("POA_PARTITION_CHECK_SECONDS", "0.1", "is out of range"),
        ("POA_WINDOW_MINUTES", "0", "POA_WINDOW_MINUTES='0' is out of range: expected a whole number from 1 to 1440"),
        ("POA_WINDOW_MINUTES", "half an hour", "POA_WINDOW_MINUTES='half an hour' is not a whole number"),
        ("POA_LEAD_IN_MINUTES", "1441", "is out of range"),
        ("POA_MAX_FUTURE_DAYS", "0", "POA_MAX_FUTURE_DAYS='0' is out of range"),
        (
            "POA_MAX_CLOCK_AHEAD_SECONDS",
            "0",
            "POA_MAX_CLOCK_AHEAD_SECONDS='0' is out of range: expected a whole number from 1 to 10000000000",
        ),
        ("POA_MAX_CLOCK_AHEAD_SECONDS", "10000000001", "is out of range"),
        ("POA_MAX_CLOCK_AHEAD_SECONDS", "1.5", "is not a whole number"),
        ("POA_LOG_FORMAT", "xml", "POA_LOG_FORMAT='xml' is not one of text, json"),
    ],
)
def test_a_bad_value_is_refused_naming_variable_value_and_range(variable, raw, expected):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: raw})
    assert expected in str(error.value)


def test_settings_errors_are_exceptions_for_the_caller_not_an_exit():
    assert not issubclass(SettingsError, SystemExit)
    with pytest.raises(SettingsError):
        Settings.from_env({"POA_METRICS_PORT": "70000"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"max_hold_seconds": math.nan}, "max_hold_seconds ($POA_MAX_HOLD_SECONDS)=nan is not a number"),
        ({"max_hold_seconds": math.inf}, "max_hold_seconds ($POA_MAX_HOLD_SECONDS)=inf is not a number"),
        ({"metrics_port": 70_000}, "metrics_port ($POA_METRICS_PORT)=70000 is out of range"),
        ({"metrics_port": True}, "is not a whole number"),
        ({"window_minutes": 1.5}, "window_minutes ($POA_WINDOW_MINUTES)=1.5 is not a whole number"),
        ({"partition_check_seconds": 0}, "is out of range"),
        ({"log_format": "xml"}, "log_format ($POA_LOG_FORMAT)='xml' is not one of text, json"),
    ],
)
def test_settings_built_in_code_are_held_to_the_same_bounds(change, expected):
    with pytest.raises(SettingsError) as error:
        replace(Settings(), **change)
    assert expected in str(error.value)


@given(variable=st.sampled_from(numeric_variables()), raw=st.text(max_size=30))
def test_any_text_in_a_numeric_variable_is_a_finite_value_in_range_or_a_settings_error(variable, raw):
    try:
        settings = Settings.from_env({variable: raw})
    except SettingsError as error:
        assert str(error).startswith(f"{variable}={raw!r} ")
        return
    setting = next(f for f in fields(Settings) if env_var(f) == variable)
    bounds = bounds_of(setting)
    value = getattr(settings, setting.name)
    if value is None:  # a default that follows another setting (POA_EXPLAIN_PORT): only when nothing is given
        assert setting.default is None and not raw.strip()
        return
    assert bounds is not None and math.isfinite(value) and bounds.low <= value <= bounds.high
    assert not raw.strip() or raw.strip().isascii()


def test_the_documented_defaults_are_within_their_own_bounds():
    for setting in fields(Settings):
        bounds = bounds_of(setting)
        if bounds is not None and setting.default is not None:  # None: follows another setting
            bounds.check(setting.default, setting.name)


def test_the_evidence_policy_of_rule_9_comes_from_its_settings():
    assert Settings().evidence_policy == EvidencePolicy()  # the contract's defaults: B 10 min, A 3 min, K 3
    policy = Settings(evidence_before_minutes=1, evidence_after_minutes=2, storm_min_hans=0).evidence_policy
    assert policy == EvidencePolicy(before_ms=60_000, after_ms=120_000, storm_min_hans=0)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("POA_EVIDENCE_AFTER_MINUTES", "61"), ("POA_EVIDENCE_BEFORE_MINUTES", "-1"), ("POA_STORM_MIN_HANS", "1.5"),
     ("POA_EVIDENCE_GRACE_SECONDS", "nan")],
)  # fmt: skip
def test_evidence_settings_out_of_bounds_are_refused_by_name(variable, raw):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: raw})


def test_the_duis_command_variants_are_5_and_7_unless_set():
    assert Settings().command_variants == frozenset({5, 7})
    assert Settings.from_env({"POA_DUIS_COMMAND_VARIANTS": " 4, 5,7 "}).command_variants == frozenset({4, 5, 7})
    assert replace(Settings(), duis_command_variants="6").command_variants == frozenset({6})


@pytest.mark.parametrize(
    ("raw", "item"),
    [("10", "10"), ("0", "0"), ("5,,7", ""), ("5;7", "5;7"), ("5,seven", "seven"), ("5.0", "5.0"), (",", ""),
     ("5,-1", "-1"), ("\uff15", "\uff15")],
)  # fmt: skip
def test_bad_duis_command_variants_are_refused_naming_variable_value_item_and_range(raw, item):
    allowed = "is not a whole number from 1 to 9 (a DUIS CommandVariant); expected a comma-separated list of them"
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"POA_DUIS_COMMAND_VARIANTS": raw})
    assert str(error.value) == f"POA_DUIS_COMMAND_VARIANTS={raw!r}: {item!r} {allowed}, e.g. 5,7"
    with pytest.raises(SettingsError) as error:  # the flag: a value set in code, as cli.py does
        replace(Settings(), duis_command_variants=raw)
    assert str(error.value).startswith(f"duis_command_variants ($POA_DUIS_COMMAND_VARIANTS)={raw!r}: {item!r} ")


def test_an_empty_flag_of_duis_command_variants_is_refused():
    with pytest.raises(SettingsError, match=r"duis_command_variants \(\$POA_DUIS_COMMAND_VARIANTS\)='': '' is not"):
        replace(Settings(), duis_command_variants="")
def test_the_clock_tolerance_defaults_to_kafkas_hour():
    """Contract 6: POA_MAX_CLOCK_AHEAD_SECONDS defaults to 3600, as log.message.timestamp.after.max.ms does."""
    assert Settings().max_clock_ahead_seconds == 3600
    assert Settings.from_env({"POA_MAX_CLOCK_AHEAD_SECONDS": "10000000000"}).max_clock_ahead_ms == 10**13
