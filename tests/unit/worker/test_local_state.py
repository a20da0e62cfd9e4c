"""The worker's local state slot: workers sharing a data directory each take a free slot, and a state that
cannot be opened is a message from the CLI, not a traceback."""

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.worker.local_state import LocalStateUnavailable, open_local_state


def test_a_second_worker_on_the_same_data_directory_takes_the_next_slot(tmp_path: Path) -> None:
    first = open_local_state(str(tmp_path), "app")
    try:
        second = open_local_state(str(tmp_path), "app")
        second.backend.close()
    finally:
        first.backend.close()
    assert (first.path.name, second.path.name) == ("app-0", "app-1")
    assert first.instance_id != second.instance_id
    again = open_local_state(str(tmp_path), "app")  # the same folder, the same identity: it fences its predecessor
    again.backend.close()
    assert (again.path, again.instance_id) == (first.path, first.instance_id)


def test_a_state_that_cannot_be_opened_is_a_specific_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LocalStateUnavailable, match="cannot open local state at .*file/app-0"):
        open_local_state(str(tmp_path / "file"), "app")


def test_the_cli_shows_it_as_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert cli.main(["worker", "--data-dir", str(tmp_path / "file"), "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "poa-filter worker: error: cannot open local state at" in err and "Traceback" not in err
