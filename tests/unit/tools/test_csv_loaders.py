"""CSV parsing and validation of the bulk loaders, without Kafka: what is loaded, what is rejected and why."""

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.tools.csv_loaders import INVENTORY, TRACKED, CsvFileError, CsvKind, LoadReport, parse_time, read_csv
from pipeline.tools.progress import Progress
from pipeline.wire.avro_codec import AvroCodec

LOAD_TIME = 1_736_928_000_000  # 2025-01-15T08:00:00Z
ESME = "00-DB-12-34-56-78-90-A0"
CODEC = AvroCodec()
CHF = "00-DB-12-34-56-78-90-A1"


def load(tmp_path: Path, kind: CsvKind, text: str, name: str = "list.csv") -> tuple[list[dict], LoadReport]:
    path = tmp_path / name
    path.write_text(text)
    report = LoadReport(str(path))
    return list(read_csv(kind, str(path), LOAD_TIME, report)), report


def test_tracked_rows_become_datums_with_canonical_ids_and_the_load_time_when_no_time_is_given(tmp_path):
    rows, report = load(tmp_path, TRACKED, f"device_id,model\n{ESME.lower()},E470\n00-db-12-34-56-78-90-ff,\n")
    assert rows == [
        {
            "device_id": ESME,
            "model": "E470",
            "added_at": LOAD_TIME,
        },
        {"device_id": "00-DB-12-34-56-78-90-FF", "model": None, "added_at": LOAD_TIME},
    ]
    assert (report.rows_read, report.rejected, report.duplicates) == (2, 0, 0)


def test_a_full_tracked_row_keeps_every_optional_field(tmp_path):
    text = (
        "device_id,manufacturer,model,firmware_version,list_version,added_at\n"
        f"{ESME},Landis+Gyr,E470,5.3.20,v7,2024-12-16T08:00:00Z\n"
    )
    rows, _ = load(tmp_path, TRACKED, text)
    assert rows == [
        {
            "device_id": ESME,
            "manufacturer": "Landis+Gyr",
            "model": "E470",
            "firmware_version": "5.3.20",
            "list_version": "v7",
            "added_at": 1_734_336_000_000,
        }
    ]


def test_inventory_rows_canonicalise_the_chf_and_an_empty_chf_means_no_association(tmp_path):
    text = (
        "device_id,device_type,chf_id,mpxn,updated_at\n"
        f"{ESME.lower()},ESME,{CHF.lower()},1234567890123,1700000000000\n"
        f"{CHF},CHF,,,\n"
    )
    rows, report = load(tmp_path, INVENTORY, text)
    assert rows == [
        {
            "device_id": ESME,
            "device_type": "ESME",
            "chf_id": CHF,
            "mpxn": "1234567890123",
            "updated_at": 1_700_000_000_000,
        },
        {"device_id": CHF, "device_type": "CHF", "chf_id": None, "mpxn": None, "updated_at": LOAD_TIME},
    ]
    assert report.rejected == 0


@pytest.mark.parametrize(
    ("kind", "row", "field"),
    [
        (TRACKED, "00-DB-12,E470,", "device_id '00-DB-12' is not an EUI-64 device ID"),
        (TRACKED, f"{ESME.replace('-', ':')},E470,", "device_id"),
        (TRACKED, f" {ESME},E470,", "device_id"),
        (TRACKED, f"{ESME},E470,yesterday", "added_at 'yesterday' is neither"),
        (
            TRACKED,
            f"{ESME},E470,1999-12-31T23:59:59Z",
            "added_at 1999-12-31T23:59:59.000+00:00 is before 2000",
        ),
        (
            TRACKED,
            f"{ESME},E470,3000-01-01T00:00:00Z",
            "added_at 3000-01-01T00:00:00.000+00:00 is on or after",
        ),
        (TRACKED, f"{ESME},E470,946684799999", "added_at"),
        (TRACKED, f"{ESME},E470", "expected 3 fields as in the header, found 2"),
        (INVENTORY, f"{ESME},,{CHF}", "device_type must be a non-empty string"),
        (INVENTORY, f"{ESME},ESME,not-a-chf", "chf_id 'not-a-chf' is not an EUI-64 device ID"),
        (INVENTORY, f"{ESME}x,ESME,{CHF}", "device_id"),
    ],
)
def test_a_bad_row_is_rejected_naming_file_line_and_field_and_the_good_rows_still_load(tmp_path, kind, row, field):
    header = "device_id,model,added_at" if kind is TRACKED else "device_id,device_type,chf_id"
    good = f"{CHF},E470," if kind is TRACKED else f"{CHF},CHF,"
    rows, report = load(tmp_path, kind, f"{header}\n{good}\n{row}\n{good}\n", name="tracked.csv")
    assert len(rows) == 2
    assert (report.rows_read, report.rejected) == (3, 1)
    assert report.rejected_rows[0][1].startswith(f"{tmp_path / 'tracked.csv'}:3: {field}")


def test_line_numbers_count_the_header_and_blank_lines_but_blank_lines_are_not_rows(tmp_path):
    rows, report = load(tmp_path, TRACKED, f"device_id\n\n{ESME}\n\nbad\n")
    assert len(rows) == 1
    assert report.rows_read == 2
    assert [m for _, m in report.rejected_rows] == [
        f"{tmp_path / 'list.csv'}:5: device_id 'bad' is not an EUI-64 device ID "
        "(expected 8 hyphen-separated hex octets, e.g. 00-DB-12-34-56-78-90-A0)"
    ]


def test_a_missing_required_column_fails_the_whole_file_before_any_row(tmp_path):
    with pytest.raises(CsvFileError, match=r"inventory.csv:1: the inventory needs column\(s\) chf_id"):
        load(tmp_path, INVENTORY, f"device_id,device_type\n{ESME},ESME\n", name="inventory.csv")


def test_an_empty_file_is_a_file_error(tmp_path):
    with pytest.raises(CsvFileError, match="no header line"):
        load(tmp_path, TRACKED, "")


def test_header_names_are_matched_ignoring_case_spaces_and_a_byte_order_mark_and_unknown_ones_are_reported(
    tmp_path,
):
    rows, report = load(tmp_path, TRACKED, f"\ufeff Device_ID , postcode\n{ESME},AB1 2CD\n")
    assert rows == [{"device_id": ESME, "added_at": LOAD_TIME}]
    assert report.ignored_columns == ("postcode",)


def test_duplicate_device_ids_are_counted_and_both_rows_are_kept_in_file_order_so_the_last_wins(tmp_path):
    rows, report = load(tmp_path, TRACKED, f"device_id,model\n{ESME},first\n{CHF},x\n{ESME.lower()},last\n")
    assert [r["model"] for r in rows if r["device_id"] == ESME] == ["first", "last"]
    assert report.duplicates == 1
    assert report.device_ids == {ESME, CHF}


def test_a_rejected_row_is_not_counted_as_a_listed_device(tmp_path):
    _, report = load(tmp_path, INVENTORY, f"device_id,device_type,chf_id\n{ESME},,\n")
    assert report.device_ids == set()


def test_rejections_shown_are_capped_but_all_are_counted(tmp_path):
    _, report = load(tmp_path, TRACKED, "device_id\n" + "bad\n" * 150)
    assert report.rejected == 150
    assert len(report.rejected_rows) == 100


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("1700000000000", 1_700_000_000_000),
        ("2024-12-16T08:00:00Z", 1_734_336_000_000),
        ("2024-12-16T08:00:00.250+00:00", 1_734_336_000_250),
        ("2024-12-16T09:00:00+01:00", 1_734_336_000_000),
        ("2024-12-16T08:00:00", 1_734_336_000_000),
    ],
)
def test_times_are_epoch_millis_or_iso_8601_in_utc(text, millis):
    assert parse_time(text, "added_at") == millis


def test_shards_split_the_rows_by_device_id_and_their_reports_add_up_to_the_whole_file(tmp_path):
    ids = [f"00-DB-12-34-56-78-{n // 256:02X}-{n % 256:02X}" for n in range(300)]
    lines = [*ids, ids[7].lower(), "bad", ids[8], "also-bad"]
    path = tmp_path / "list.csv"
    path.write_text("device_id\n" + "\n".join(lines) + "\n")
    whole = LoadReport(str(path))
    everything = list(read_csv(TRACKED, str(path), LOAD_TIME, whole))
    merged = LoadReport(str(path))
    shards = []
    for index in range(3):
        part = LoadReport(str(path))
        shards.append([row["device_id"] for row in read_csv(TRACKED, str(path), LOAD_TIME, part, (index, 3))])
        merged.add(part)
    assert all(shards) and sorted(sum(shards, [])) == sorted(row["device_id"] for row in everything)
    assert next(s for s in shards if ids[7] in s).count(ids[7]) == 2  # both rows of a device in one shard
    assert (
        (merged.rows_read, merged.rejected, merged.duplicates)
        == (304, 2, 2)
        == (
            whole.rows_read,
            whole.rejected,
            whole.duplicates,
        )
    )
    assert merged.rejected_rows == whole.rejected_rows == [
        (303, f"{path}:303: device_id 'bad' is not an EUI-64 device ID "
              "(expected 8 hyphen-separated hex octets, e.g. 00-DB-12-34-56-78-90-A0)"),
        (305, f"{path}:305: device_id 'also-bad' is not an EUI-64 device ID "
              "(expected 8 hyphen-separated hex octets, e.g. 00-DB-12-34-56-78-90-A0)"),
    ]  # fmt: skip
    assert merged.device_ids == whole.device_ids == set(ids)


@pytest.mark.parametrize(
    "cell",
    [
        "\u00b2",  # superscript two: str.isdigit() is true, int() fails
        "17000000000\u00b2",
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic digits
        "\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # full-width digits
        "\u0662\u0660\u0662\u0664-12-16T08:00:00Z",
        "2024-12-16T08:00:00\u00b2",
        "9" * 5000,  # more digits than int() converts
        "nan",
        "-1",
    ],
)
def test_a_time_cell_that_is_neither_ascii_digits_nor_iso_8601_is_a_row_error(tmp_path, cell):
    rows, report = load(tmp_path, TRACKED, f"device_id,added_at\n{CHF},\n{ESME},{cell}\n", name="tracked.csv")
    assert [r["device_id"] for r in rows] == [CHF]
    assert report.rejected_rows == [
        (3, f"{tmp_path / 'tracked.csv'}:3: added_at {cell!r} is neither an ISO-8601 UTC time nor epoch milliseconds")
    ]


@pytest.mark.parametrize(
    ("header", "positions", "columns"),
    [("device_id,,", "2, 3", 3), ("device_id,", "2", 2), (",device_id", "1", 2), ("device_id, ,model", "2", 3)],
)
def test_an_empty_column_name_is_a_file_error_naming_its_position(tmp_path, header, positions, columns):
    with pytest.raises(CsvFileError) as error:
        load(tmp_path, TRACKED, f"{header}\n{ESME},,\n", name="tracked.csv")
    assert str(error.value) == (
        f"{tmp_path / 'tracked.csv'}:1: empty column name at position {positions} of the header "
        f"(the header has {columns} columns); name every column or remove the empty ones; nothing was loaded"
    )


def cells() -> st.SearchStrategy[str]:
    """Any text; text that looks nearly like a time or an ID; and numbers in any script (str.isdigit() takes
    '\u00b2', which int() refuses, and int() takes '\u0661', which the loaders do not document)."""
    near = st.text(alphabet=st.sampled_from("0123456789-:TZ+.\u00b2\u0661\uff11\u2003 abcdefABCDEF"), max_size=30)
    numbers = st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=16)
    return st.one_of(st.text(max_size=30), near, numbers, st.just(""), st.just(ESME), st.just("2024-12-16T08:00:00Z"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from([TRACKED, INVENTORY]), data=st.data())
def test_any_cells_load_or_are_rejected_naming_file_line_and_field_and_what_loads_encodes(tmp_path, kind, data):
    columns = [*kind.required, *kind.optional, kind.time_field]
    table = data.draw(st.lists(st.lists(cells(), min_size=len(columns), max_size=len(columns)), max_size=5))
    path = tmp_path / "cells.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([columns, *table])
    report = LoadReport(str(path))
    loaded = list(read_csv(kind, str(path), LOAD_TIME, report))
    assert report.rows_read == len(table)
    assert len(loaded) + report.rejected == report.rows_read
    for line, message in report.rejected_rows:
        assert message.startswith(f"{path}:{line}: ")
        assert message.split(": ", 1)[1].split(" ", 1)[0] in (*columns, "expected")
    header = CODEC.header(kind.record_name, "topic")
    for datum in loaded:
        decoded = CODEC.decode(kind.record_name, kind.encode(header, datum))
        assert decoded == {name: datum.get(name) for name in decoded}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reading_reports_rows_of_the_whole_file_to_the_progress_line(tmp_path):
    ids = [f"00-DB-12-34-56-78-{n // 256:02X}-{n % 256:02X}" for n in range(10)]
    path = tmp_path / "list.csv"
    path.write_text("device_id\n" + "\n".join(ids) + "\n")
    screen, ticks = Terminal(), iter(range(100))
    progress = Progress("load", total=10, stream=screen, clock=lambda: float(next(ticks)), every_s=0)
    with progress:
        rows = list(read_csv(TRACKED, str(path), LOAD_TIME, LoadReport(str(path)), (1, 2), progress))
        progress.finish()
    assert 0 < len(rows) < 10 and progress.done == 10  # one shard's rows, the whole file's progress
    assert screen.getvalue().split("\r")[-1].startswith("load: 10 rows, ")


def test_an_inventory_postcode_is_kept_as_written_bar_surrounding_spaces_and_a_blank_one_is_none(tmp_path):
    text = (
        "device_id,device_type,chf_id,postcode\n"
        f"{ESME},ESME,{CHF},  sw1a 1aa \n"
        f"{CHF},CHF,,\n"
        "00-DB-12-34-56-78-90-A2,GSME,,\u2003\n"
        "00-DB-12-34-56-78-90-A3,IHD,,not a postcode!\n"
    )
    rows, report = load(tmp_path, INVENTORY, text)
    assert [r["postcode"] for r in rows] == ["sw1a 1aa", None, None, "not a postcode!"]
    assert report.rejected == 0
    header = CODEC.header("InventoryRecord", "topic")
    assert [CODEC.decode("InventoryRecord", INVENTORY.encode(header, r))["postcode"] for r in rows] == [
        "sw1a 1aa",
        None,
        None,
        "not a postcode!",
    ]


def test_an_inventory_without_a_postcode_column_loads_as_before_with_no_postcode(tmp_path):
    rows, _ = load(tmp_path, INVENTORY, f"device_id,device_type,chf_id\n{ESME},ESME,{CHF}\n")
    header = CODEC.header("InventoryRecord", "topic")
    assert "postcode" not in rows[0]
    assert CODEC.decode("InventoryRecord", INVENTORY.encode(header, rows[0]))["postcode"] is None
