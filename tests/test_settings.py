"""The CDS_* environment schema: numbers, the database URL, unknown names, content-only loading, server counts."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.server import DEFAULT_THREADS, worker_counts
from cds_service.settings import REPO_ROOT, Settings, SettingsError, load_settings, server_counts
from tests.support.fhir_server import free_port

OFF = {"CDS_AUTH": "off"}
POSITIVE_FLOATS = ("CDS_FHIR_TIMEOUT", "CDS_JWKS_REFRESH_COOLDOWN")
POSITIVE_INTS = ("CDS_FHIR_MAX_PAGES", "CDS_FHIR_MAX_RESPONSE_BYTES", "CDS_MAX_REQUEST_BYTES")
COUNTS = ("CDS_WORKERS", "CDS_THREADS")
NUMERIC = POSITIVE_FLOATS + POSITIVE_INTS + COUNTS


# ---- numbers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "abc", "1,5", " "])
def test_every_numeric_variable_refuses_non_finite_and_non_numbers(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name} must be .*, got {raw!r}$"):
        load_settings({**OFF, name: raw})


@pytest.mark.parametrize("name", POSITIVE_FLOATS + POSITIVE_INTS)
@pytest.mark.parametrize("raw", ["0", "-1"])
def test_positive_variables_refuse_zero_and_negative(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name} must be (a finite positive number|a positive integer)"):
        load_settings({**OFF, name: raw})


def test_the_nan_message_names_the_variable_and_the_rule() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**OFF, "CDS_FHIR_TIMEOUT": "nan"})
    assert str(caught.value) == "CDS_FHIR_TIMEOUT must be a finite positive number, got 'nan'"


def test_integers_refuse_fractions_and_counts_refuse_negatives() -> None:
    with pytest.raises(SettingsError, match=re.escape("CDS_FHIR_MAX_PAGES must be a positive integer, got '2.5'")):
        load_settings({**OFF, "CDS_FHIR_MAX_PAGES": "2.5"})
    with pytest.raises(SettingsError, match="CDS_WORKERS must be a non-negative integer, got '-1'"):
        load_settings({**OFF, "CDS_WORKERS": "-1"})


def test_valid_numbers_are_read() -> None:
    s = load_settings(
        {
            **OFF,
            "CDS_FHIR_TIMEOUT": "1.5",
            "CDS_JWKS_REFRESH_COOLDOWN": "2",
            "CDS_FHIR_MAX_PAGES": "3",
            "CDS_FHIR_MAX_RESPONSE_BYTES": "4",
            "CDS_MAX_REQUEST_BYTES": "5",
            "CDS_WORKERS": "6",
            "CDS_THREADS": "0",
        }
    )
    assert (s.fhir_timeout, s.jwks_refresh_cooldown, s.fhir_max_pages) == (1.5, 2.0, 3)
    assert (s.fhir_max_response_bytes, s.max_request_bytes, s.workers, s.threads) == (4, 5, 6, 0)


# ---- the database URL ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://user@db.example.org/cds", "must use one of the schemes"),
        ("postgresql+psycopg2://user@db.example.org/cds", "must use one of the schemes"),
        ("garbage", "is not a database URL"),
        ("://", "is not a database URL"),
        ("sqlite:////proc/x/db.sqlite", "needs a writable folder"),
    ],
)
def test_a_bad_database_url_is_refused(url: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"^CDS_DATABASE_URL {problem}"):
        load_settings({**OFF, "CDS_DATABASE_URL": url})


def test_a_sqlite_path_under_a_file_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(SettingsError, match="CDS_DATABASE_URL needs a writable folder"):
        load_settings({**OFF, "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/plain.txt/sub/cds.db"})
    ok = load_settings({**OFF, "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/new/dir/cds.db"})
    assert ok.database_url == f"sqlite:///{tmp_path}/new/dir/cds.db"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a mode 0500 folder")
def test_a_sqlite_file_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SettingsError, match="CDS_DATABASE_URL needs a writable folder"):
        load_settings({**OFF, "CDS_DATABASE_URL": f"sqlite:///{locked}/cds.db"})


def test_the_password_of_a_refused_database_url_is_not_repeated() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**OFF, "CDS_DATABASE_URL": "mysql://user:s3cret@db.example.org/cds"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://u@db.example.org/cds",
        "postgresql+psycopg://u:pw@db.example.org:5433/cds",
    ],
)
def test_good_database_urls_pass(url: str) -> None:
    assert load_settings({**OFF, "CDS_DATABASE_URL": url}).database_url == url


# ---- unknown names ------------------------------------------------------------------------------------------------


def test_an_unknown_cds_variable_is_warned_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cds_service.settings"):
        settings = load_settings({**OFF, "CDS_FHIR_TIMEUT": "secret-value-123", "OTHER_VAR": "x"})
    assert settings.fhir_timeout == Settings().fhir_timeout
    unknown = [r for r in caplog.records if r.getMessage() == "unknown_setting"]
    assert [getattr(r, "variable", None) for r in unknown] == ["CDS_FHIR_TIMEUT"]
    assert all("secret-value-123" not in repr(r.__dict__) for r in caplog.records)


def test_known_variables_are_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cds_service.settings"):
        load_settings(
            {
                **OFF,
                "CDS_FHIR_TIMEOUT": "1",
                "CDS_WORKERS": "2",
                "CDS_TRUSTED_ISSUERS": "",
                "CDS_ALLOW_CLOCK_HEADER": "1",
            }
        )
    assert not caplog.records


# ---- for_server ---------------------------------------------------------------------------------------------------


def test_content_only_loading_skips_the_jwt_requirements() -> None:
    with pytest.raises(SettingsError, match="CDS_TRUSTED_ISSUERS"):
        load_settings({"CDS_AUTH": "jwt"})
    with pytest.raises(SettingsError, match="CDS_CORS_ORIGINS"):
        load_settings({"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": "x.yaml", "CDS_CORS_ORIGINS": "*"})
    assert load_settings({"CDS_AUTH": "jwt"}, for_server=False).trusted_issuers_file is None
    assert load_settings({"CDS_AUTH": "jwt", "CDS_CORS_ORIGINS": "*"}, for_server=False).cors_origins == ("*",)


def test_content_only_loading_still_refuses_bad_values() -> None:
    with pytest.raises(SettingsError, match="CDS_FHIR_TIMEOUT"):
        load_settings({"CDS_FHIR_TIMEOUT": "inf"}, for_server=False)


# ---- workers and threads ------------------------------------------------------------------------------------------


def test_server_counts_need_no_auth_settings() -> None:
    assert server_counts({"CDS_AUTH": "jwt", "CDS_WORKERS": "3", "CDS_THREADS": "4"}) == (3, 4)
    assert server_counts({}) == (0, 0)
    with pytest.raises(SettingsError, match="CDS_THREADS"):
        server_counts({"CDS_THREADS": "nan"})


def test_worker_counts_prefers_flags_then_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_AUTH", "jwt")
    monkeypatch.delenv("CDS_TRUSTED_ISSUERS", raising=False)
    monkeypatch.setenv("CDS_WORKERS", "5")
    monkeypatch.setenv("CDS_THREADS", "3")
    assert worker_counts() == (5, 3)
    assert worker_counts(7, 2) == (7, 2)
    monkeypatch.setenv("CDS_WORKERS", "0")
    monkeypatch.setenv("CDS_THREADS", "")
    assert worker_counts() == (max(2, os.cpu_count() or 2), DEFAULT_THREADS)
    monkeypatch.setenv("CDS_WORKERS", "many")
    with pytest.raises(SettingsError, match="CDS_WORKERS"):
        worker_counts()


# ---- defaults and direct construction -----------------------------------------------------------------------------


def test_defaults_are_unchanged() -> None:
    s = Settings()
    assert (s.public_url, s.auth, s.base_url) == ("http://127.0.0.1:8080", "jwt", "http://127.0.0.1:8080")
    assert s.database_url == f"sqlite:///{REPO_ROOT / 'var' / 'cds-service.db'}"
    assert (s.allowed_fhir_servers, s.cors_origins, s.guide_id) == ((), ("*",), "weakness")
    assert (s.fhir_timeout, s.fhir_max_pages, s.fhir_max_response_bytes, s.max_request_bytes) == (
        0.35,
        50,
        5_000_000,
        5_000_000,
    )
    assert (s.content_dir, s.cards_dir) == (REPO_ROOT / "content", REPO_ROOT / "cards")
    assert (s.patient_hash_key, s.trusted_issuers_file, s.jwks_refresh_cooldown) == (None, None, 30.0)
    assert (s.allow_http_loopback, s.allow_clock_header, s.workers, s.threads) == (False, False, 0, 0)
    assert load_settings(OFF) == Settings(auth="off")


def test_settings_alone_ignore_the_environment_and_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_FHIR_TIMEOUT", "9")
    s = Settings(public_url="http://cds.test/", auth="off")
    assert (s.fhir_timeout, s.base_url) == (0.35, "http://cds.test")
    with pytest.raises(Exception, match="frozen"):
        s.auth = "jwt"


def test_values_keep_their_old_meaning() -> None:
    s = load_settings(
        {
            "CDS_AUTH": " JWT ",
            "CDS_TRUSTED_ISSUERS": " issuers.yaml ",
            "CDS_PUBLIC_URL": " https://a/ ",
            "CDS_CORS_ORIGINS": " https://ehr.example.org , ",
            "CDS_PATIENT_HASH_KEY": " k ",
            "CDS_ALLOW_HTTP_LOOPBACK": "true",
            "CDS_ALLOW_CLOCK_HEADER": "1",
            "CDS_CONTENT_DIR": "/c",
            "CDS_CARDS_DIR": "",
            "CDS_DATABASE_URL": "",
        }
    )
    assert (s.auth, s.trusted_issuers_file, s.base_url) == ("jwt", Path("issuers.yaml"), "https://a")
    assert (s.cors_origins, s.patient_hash_key) == (("https://ehr.example.org",), " k ")
    assert (s.allow_http_loopback, s.allow_clock_header) == (False, True)  # only "1" switches a flag on
    assert (s.content_dir, s.cards_dir, s.database_url) == (Path("/c"), Settings().cards_dir, Settings().database_url)
    with pytest.raises(SettingsError, match="CDS_PUBLIC_URL must be an absolute http"):
        load_settings({**OFF, "CDS_PUBLIC_URL": "cds.example.org"})
    with pytest.raises(SettingsError, match="CDS_AUTH must be one of jwt, off, got 'none'"):
        load_settings({"CDS_AUTH": "none"})


# ---- the deployed command -----------------------------------------------------------------------------------------


def test_serve_exits_2_naming_a_non_finite_variable(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env = {**clean, "CDS_AUTH": "off", "CDS_FHIR_TIMEOUT": "nan", "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    done = subprocess.run(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "CDS_FHIR_TIMEOUT" in done.stderr and "Traceback" not in done.stderr
