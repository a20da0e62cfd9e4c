"""load-tracked / load-inventory through the CLI on the real broker: what lands on the compacted topics."""

import pytest

from pipeline.cli import main
from pipeline.kafka import clients
from pipeline.kafka.topics import read_to_end
from pipeline.settings import Settings
from pipeline.wire.avro_codec import AvroCodec

pytestmark = pytest.mark.broker

A, B, C, D = (f"00-DB-12-34-56-78-90-A{n}" for n in range(4))
CHF = "00-DB-12-34-56-78-90-FF"


def flags(settings: Settings) -> list[str]:
    topics = settings.topics
    return [
        "--bootstrap-servers", settings.bootstrap_servers,
        "--app-id", settings.app_id,
        "--topic-tracked-devices", topics.tracked_devices,
        "--topic-inventory", topics.inventory,
    ]  # fmt: skip


def latest(settings: Settings, topic: str) -> dict[str, bytes | None]:
    """Latest value per key on the topic, read from the beginning to the current end."""
    return {(message.key() or b"").decode(): message.value() for message in read_to_end(settings, topic, 60)}


def decoded(settings: Settings, topic: str, record: str) -> dict[str, dict | None]:
    codec = AvroCodec()
    return {k: None if v is None else codec.decode(record, v) for k, v in latest(settings, topic).items()}


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_tracked_puts_each_row_on_the_topic_keyed_by_its_canonical_id(settings, tmp_path, capsys):
    csv = write(
        tmp_path,
        "tracked.csv",
        "device_id,manufacturer,model,firmware_version,list_version,added_at\n"
        f"{A.lower()},Landis+Gyr,E470,5.3.20,v7,2024-12-16T08:00:00Z\n"
        f"{B},,,,,1734336000000\n",
    )
    assert main(["load-tracked", csv, *flags(settings)]) == 0
    assert decoded(settings, settings.topics.tracked_devices, "TrackedDevice") == {
        A: {
            "device_id": A,
            "manufacturer": "Landis+Gyr",
            "model": "E470",
            "firmware_version": "5.3.20",
            "list_version": "v7",
            "added_at": 1_734_336_000_000,
        },
        B: {
            "device_id": B,
            "manufacturer": None,
            "model": None,
            "firmware_version": None,
            "list_version": None,
            "added_at": 1_734_336_000_000,
        },
    }
    assert f"{csv}: 2 rows read, 2 loaded, 0 rejected" in capsys.readouterr().out


def test_load_inventory_puts_each_device_with_its_chf_and_postcode_on_the_topic(settings, tmp_path):
    csv = write(
        tmp_path,
        "inventory.csv",
        f"device_id,device_type,chf_id,mpxn,updated_at,postcode\n{CHF},CHF,,,1700000000000,\n"
        f"{A},ESME,{CHF.lower()},1234567890123,1700000000000, SW1A 1AA \n",
    )
    assert main(["load-inventory", csv, *flags(settings)]) == 0
    records = decoded(settings, settings.topics.inventory, "InventoryRecord")
    assert records == {
        CHF: {
            "device_id": CHF,
            "device_type": "CHF",
            "chf_id": None,
            "mpxn": None,
            "updated_at": 1_700_000_000_000,
            "postcode": None,
        },
        A: {
            "device_id": A,
            "device_type": "ESME",
            "chf_id": CHF,
            "mpxn": "1234567890123",
            "updated_at": 1_700_000_000_000,
            "postcode": "SW1A 1AA",
        },
    }


def test_an_inventory_without_a_postcode_column_loads_with_no_postcode(settings, tmp_path):
    csv = write(tmp_path, "inventory.csv", f"device_id,device_type,chf_id\n{A},ESME,{CHF}\n")
    assert main(["load-inventory", csv, *flags(settings)]) == 0
    record = decoded(settings, settings.topics.inventory, "InventoryRecord")[A]
    assert record is not None and record["postcode"] is None and record["chf_id"] == CHF


def test_duplicates_leave_the_last_row_on_the_topic(settings, tmp_path, capsys):
    csv = write(tmp_path, "tracked.csv", f"device_id,model\n{A},first\n{B},x\n{A.lower()},last\n")
    assert main(["load-tracked", csv, *flags(settings)]) == 0
    record = decoded(settings, settings.topics.tracked_devices, "TrackedDevice")[A]
    assert record is not None and record["model"] == "last"
    assert "1 rows repeat an earlier device ID" in capsys.readouterr().out


def test_replace_tombstones_exactly_the_devices_no_longer_listed(settings, tmp_path, capsys):
    assert main(["load-tracked", write(tmp_path, "v1.csv", f"device_id\n{A}\n{B}\n{C}\n"), *flags(settings)]) == 0
    capsys.readouterr()
    v2 = write(tmp_path, "v2.csv", f"device_id\n{B.lower()}\n{C}\n{D}\n")
    assert main(["load-tracked", "--replace", v2, *flags(settings)]) == 0
    assert "removed 1 devices" in capsys.readouterr().out
    values = latest(settings, settings.topics.tracked_devices)
    assert values[A] is None
    assert all(values[k] is not None for k in (B, C, D))
    # Replacing again with the same list removes nothing more (A is already a tombstone).
    assert main(["load-tracked", "--replace", v2, *flags(settings)]) == 0
    assert "removed 0 devices" in capsys.readouterr().out


def test_a_bad_row_is_reported_with_file_line_and_field_and_the_good_rows_load(settings, tmp_path, capsys):
    csv = write(tmp_path, "tracked.csv", f"device_id\n{A}\n00-DB-12\n{B}\n")
    assert main(["load-tracked", csv, *flags(settings)]) == 1
    out, err = capsys.readouterr()
    assert f"{csv}:3: device_id '00-DB-12' is not an EUI-64 device ID" in err
    assert f"{csv}: 3 rows read, 2 loaded, 1 rejected" in out
    assert set(latest(settings, settings.topics.tracked_devices)) == {A, B}


def test_replace_with_a_rejected_row_tombstones_nothing(settings, tmp_path, capsys):
    assert main(["load-tracked", write(tmp_path, "v1.csv", f"device_id\n{A}\n{B}\n"), *flags(settings)]) == 0
    capsys.readouterr()
    csv = write(tmp_path, "v2.csv", f"device_id\n{A}\n{B[:-1]}Z\n")  # B mistyped: must not be removed
    assert main(["load-tracked", "--replace", csv, *flags(settings)]) == 1
    out, err = capsys.readouterr()
    assert f"{csv}:3: device_id" in err
    assert "removed nothing" in out
    values = latest(settings, settings.topics.tracked_devices)
    assert values[A] is not None and values[B] is not None


def test_a_missing_required_column_loads_nothing_and_exits_2(settings, tmp_path, capsys):
    csv = write(tmp_path, "inventory.csv", f"device_id,device_type\n{A},ESME\n")
    assert main(["load-inventory", csv, *flags(settings)]) == 2
    err = capsys.readouterr().err
    assert "chf_id" in err and "Traceback" not in err
    assert latest(settings, settings.topics.inventory) == {}


def test_a_topic_that_does_not_exist_is_an_error_and_is_not_created(settings, tmp_path, capsys):
    csv = write(tmp_path, "tracked.csv", f"device_id\n{A}\n")
    missing = settings.topics.tracked_devices + ".missing"
    args = ["load-tracked", csv, *flags(settings), "--topic-tracked-devices", missing]
    assert main(args) == 2
    assert f"{missing} do not exist" in capsys.readouterr().err
    consumer = clients.consumer(settings, "test-reader", {})
    try:
        assert missing not in consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()


def test_a_large_file_arrives_complete(settings, tmp_path, capsys):
    rows = [f"00-00-00-00-00-{n >> 16 & 255:02X}-{n >> 8 & 255:02X}-{n & 255:02X}" for n in range(50_000)]
    csv = write(tmp_path, "big.csv", "device_id\n" + "\n".join(rows) + "\n")
    assert main(["load-tracked", csv, *flags(settings)]) == 0
    assert set(latest(settings, settings.topics.tracked_devices)) == set(rows)
    assert "50000 rows read, 50000 loaded, 0 rejected" in capsys.readouterr().out


def test_a_non_ascii_digit_in_a_time_cell_is_a_row_error_and_the_other_rows_load(settings, tmp_path, capsys):
    csv = write(tmp_path, "tracked.csv", f"device_id,added_at\n{A},1734336000000\n{B},\u00b2\n{C},\n")
    assert main(["load-tracked", csv, *flags(settings)]) == 1
    out, err = capsys.readouterr()
    assert f"{csv}:3: added_at '\u00b2' is neither an ISO-8601 UTC time nor epoch milliseconds" in err
    assert "Traceback" not in err and f"{csv}: 3 rows read, 2 loaded, 1 rejected" in out
    assert set(latest(settings, settings.topics.tracked_devices)) == {A, C}


def test_an_empty_column_name_is_named_and_nothing_is_loaded(settings, tmp_path, capsys):
    csv = write(tmp_path, "tracked.csv", f"device_id,,\n{A},,\n")
    assert main(["load-tracked", csv, *flags(settings)]) == 2
    err = capsys.readouterr().err
    assert f"{csv}:1: empty column name at position 2, 3 of the header" in err
    assert latest(settings, settings.topics.tracked_devices) == {}


@pytest.mark.parametrize("body", ["", "\n\n"])
def test_replace_with_a_file_without_rows_is_refused_unless_allowed(settings, tmp_path, capsys, body):
    assert main(["load-tracked", write(tmp_path, "v1.csv", f"device_id\n{A}\n{B}\n"), *flags(settings)]) == 0
    empty = write(tmp_path, "empty.csv", f"device_id\n{body}")
    capsys.readouterr()
    assert main(["load-tracked", "--replace", empty, *flags(settings)]) == 2
    err = capsys.readouterr().err
    assert f"{empty}: the file has no rows, so --replace would remove every device" in err
    assert "--allow-empty" in err and "Traceback" not in err
    assert all(v is not None for v in latest(settings, settings.topics.tracked_devices).values())
    assert main(["load-tracked", "--replace", "--allow-empty", empty, *flags(settings)]) == 0
    assert "removed 2 devices" in capsys.readouterr().out
    assert latest(settings, settings.topics.tracked_devices) == {A: None, B: None}
