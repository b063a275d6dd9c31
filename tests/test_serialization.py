"""Serialization: exact round-trips, safe decoding, clear errors, pickle opt-in, encryption.

Pure Python: nothing here touches the database.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import sys
import threading
import uuid
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from django.db import models
from django.test import override_settings

from django_dbos import errors, serialization
from django_dbos.serialization import (
    EncryptedSerializer,
    JSONSerializer,
    PickleSerializer,
    RecordedError,
    check_serializer_path,
    deserialize,
    deserialize_args,
    deserialize_exception,
    get_serializer,
    serialize,
    serialize_args,
    serialize_exception,
)

JSON_PATH = "django_dbos.serialization.JSONSerializer"
PICKLE_PATH = "django_dbos.serialization.PickleSerializer"
ENCRYPTED_PATH = "django_dbos.serialization.EncryptedSerializer"
KEY_OLD, KEY_NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


# -- module-level fixtures: the decoder only rebuilds classes it can import ---------------------


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    lines: list[tuple[str, Decimal]]
    where: Point
    placed_at: dt.datetime
    note: str | None = None
    total: Decimal = dataclasses.field(init=False, default=Decimal(0))


@dataclasses.dataclass(slots=True, kw_only=True)
class Options:
    retries: int
    tags: frozenset[str]


class Color(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Status(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Pair(NamedTuple):
    left: Any
    right: Any


class PaymentError(Exception):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class Opaque:
    """Not serializable by JSON; picklable (module-level) and comparable."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


CALLS: list[Any] = []


class Spy:
    """A class of the wrong kind: decoding must never construct it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append((args, kwargs))


def spy_function(*args: Any) -> Exception:
    CALLS.append(args)
    return ValueError("rebuilt by a function outside django_dbos")


def make_json_serializer() -> JSONSerializer:
    return JSONSerializer()


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def path_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def type_name_of(error: BaseException) -> str:
    return vars(error)["type_name"]


def assert_identical(got: Any, expected: Any) -> None:
    """Equal, and of the same type all the way down (a tuple is not a list, 1 is not "1")."""
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_identical(next(k for k in got if k == key), key)
            assert_identical(got[key], expected[key])
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_identical(g, e)
    elif dataclasses.is_dataclass(expected):
        for f in dataclasses.fields(expected):
            assert_identical(getattr(got, f.name), getattr(expected, f.name))
    else:
        assert got == expected
        if isinstance(expected, dt.datetime | dt.time):
            assert got.utcoffset() == expected.utcoffset()


def roundtrip(value: Any) -> Any:
    text = JSONSerializer().dumps(value)
    json.loads(text)  # always valid JSON (so ::jsonb works on it)
    return JSONSerializer().loads(text)


# -- round-trips --------------------------------------------------------------------------------

VALUES = {
    "str": "héllo \u2603 \x00",
    "empty str": "",
    "int": -42,
    "big int": 2**100,
    "float": 1.25,
    "negative zero": -0.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "a", None, [2.5]],
    "tuple": (1, "a", (2, [3])),
    "empty tuple": (),
    "list of tuples": [(1, 2), (3, 4)],
    "dict": {"a": 1, "b": {"c": [1, 2]}},
    "int keys": {1: "one", 2: "two"},
    "mixed keys": {"a": 1, 2: "b", None: 3, 1.5: 4, True: 5},
    "tuple keys": {(1, "x"): [1], (2, "y"): {"z": (3,)}},
    "frozenset key": {frozenset({1, 2}): "set"},
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "set of tuples": {(1, 2), (3, 4)},
    "mixed set": {1, "a", None},
    "empty set": set(),
    "naive datetime": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
    "utc datetime": dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC),
    "offset datetime": dt.datetime(
        2024, 1, 1, 12, 0, 0, 7, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
    ),
    "zoneinfo datetime": dt.datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
    "date": dt.date(1999, 12, 31),
    "time": dt.time(8, 15, 30, 999999),
    "aware time": dt.time(8, 15, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    "timedelta": dt.timedelta(days=-2, seconds=5, microseconds=7),
    "decimal": Decimal("1.10"),
    "decimal exp": Decimal("-1.5E+30"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "bytes": b"\x00\xff binary",
    "bytearray": bytearray(b"\x01\x02"),
    "dataclass": Point(1, 2),
    "nested dataclass": Order(
        id=uuid.uuid4(),
        lines=[("apple", Decimal("0.50"))],
        where=Point(3, 4),
        placed_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
    ),
    "slots kw_only dataclass": Options(retries=3, tags=frozenset({"x"})),
    "enum": Color.RED,
    "enum with tuple value": Color.GREEN,
    "int enum": Level.HIGH,
    "text choices": Status.CLOSED,
    "namedtuple": Pair(Point(0, 0), (1, 2)),
    "enum key": {Level.LOW: "low", Status.OPEN: "open"},
    "deep": {"a": [{"b": ({"c": {1, 2}},)}]},
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_round_trip_keeps_value_and_type(value: Any) -> None:
    assert_identical(roundtrip(value), value)


def test_zoneinfo_datetime_keeps_its_zone() -> None:
    value = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris"))
    got = roundtrip(value)
    assert got.tzinfo == ZoneInfo("Europe/Paris")
    assert (got.utcoffset(), got.fold) == (value.utcoffset(), 1)
    assert got + dt.timedelta(days=180) == value + dt.timedelta(days=180)  # DST rules kept


def test_non_init_dataclass_field_is_restored() -> None:
    order = Order(uuid.uuid4(), [], Point(0, 0), dt.datetime(2024, 1, 1))
    order.total = Decimal("9.99")
    assert roundtrip(order).total == Decimal("9.99")


def test_plain_data_is_plain_json() -> None:
    value = {"a": 1, "b": [1, 2.5, None, True], "c": {"d": "e"}}
    text = JSONSerializer().dumps(value)
    assert json.loads(text) == value
    assert "__dbos__" not in text
    assert JSONSerializer().dumps([1, "x"]) == '[1,"x"]'


def test_encoding_does_not_modify_the_value() -> None:
    value = {"a": (1, 2), "b": [{1: "x"}]}
    JSONSerializer().dumps(value)
    assert value == {"a": (1, 2), "b": [{1: "x"}]}
    assert type(value["a"]) is tuple


def test_tuple_and_list_stay_distinct() -> None:
    got = roundtrip({"t": (1, 2), "l": [1, 2], "nested": [(1,), [1]]})
    assert type(got["t"]) is tuple and type(got["l"]) is list
    assert [type(x) for x in got["nested"]] == [tuple, list]


@pytest.mark.parametrize(
    "value",
    [
        {"__dbos__": "tuple", "v": [1, 2]},
        {"__dbos__": "exception", "cls": "builtins:ValueError", "args": ["x"], "str": "x"},
        {"__dbos__": "dataclass", "cls": path_of(Spy), "v": {}},
        {"__dbos__": "cls"},
        [{"outer": {"__dbos__": "bytes", "v": "AAAA"}}],
    ],
)
def test_user_dicts_holding_the_tag_key_are_never_taken_for_tags(value: Any) -> None:
    assert_identical(roundtrip(value), value)
    assert CALLS == []


def test_dict_subclasses_and_str_subclasses_come_back_as_base_types() -> None:
    from collections import OrderedDict

    got = roundtrip(OrderedDict(a=1))
    assert got == {"a": 1} and type(got) is dict


# -- decoding never trusts the data -------------------------------------------------------------


def test_dataclass_from_a_module_that_no_longer_exists_warns_and_gives_a_dict() -> None:
    text = JSONSerializer().dumps(Point(1, 2)).replace(path_of(Point), "gone.module:Point")
    with pytest.warns(RuntimeWarning, match="gone.module:Point"):
        assert_identical(JSONSerializer().loads(text), {"x": 1, "y": 2})


def test_dataclass_whose_fields_changed_warns_and_gives_a_dict() -> None:
    text = json.dumps({"__dbos__": "dataclass", "cls": path_of(Point), "v": {"x": 1}})
    with pytest.warns(RuntimeWarning, match="Point"):
        assert JSONSerializer().loads(text) == {"x": 1}


def test_dataclass_path_to_a_class_that_is_not_a_dataclass_is_not_called() -> None:
    text = json.dumps({"__dbos__": "dataclass", "cls": path_of(Spy), "v": {"a": 1}})
    with pytest.warns(RuntimeWarning, match="Spy"):
        assert JSONSerializer().loads(text) == {"a": 1}
    assert CALLS == []


def test_enum_path_to_a_non_enum_gives_the_raw_value() -> None:
    text = json.dumps({"__dbos__": "enum", "cls": "builtins:int", "name": "X", "v": "5"})
    with pytest.warns(RuntimeWarning, match="builtins:int"):
        assert JSONSerializer().loads(text) == "5"


def test_enum_whose_value_changed_is_found_by_name() -> None:
    text = json.dumps({"__dbos__": "enum", "cls": path_of(Level), "name": "HIGH", "v": 99})
    assert JSONSerializer().loads(text) is Level.HIGH


def test_namedtuple_that_cannot_be_rebuilt_gives_a_tuple() -> None:
    text = JSONSerializer().dumps(Pair(1, 2)).replace(path_of(Pair), "gone:Pair")
    with pytest.warns(RuntimeWarning):
        assert_identical(JSONSerializer().loads(text), (1, 2))


@pytest.mark.parametrize(
    "cls_path", ["os:system", "builtins:eval", "collections:OrderedDict", path_of(Spy)]
)
def test_exception_path_to_something_else_is_not_called(cls_path: str) -> None:
    text = json.dumps(
        {"__dbos__": "exception", "cls": cls_path, "args": ["echo pwned"], "str": "boom"}
    )
    with pytest.warns(RuntimeWarning, match=cls_path):
        got = JSONSerializer().loads(text)
    assert type(got) is RecordedError
    assert got.type_name == cls_path.replace(":", ".")
    assert str(got) == f"{cls_path.replace(':', '.')}: boom"
    assert CALLS == []


def test_exception_reduce_pointing_outside_django_dbos_is_not_called() -> None:
    record = {
        "__dbos__": "exception",
        "cls": "builtins:ValueError",
        "args": ["from args"],
        "str": "from args",
        "reduce": [path_of(spy_function), ["x"]],
    }
    got = JSONSerializer().loads(json.dumps(record))
    assert type(got) is ValueError and got.args == ("from args",)
    assert CALLS == []


def test_missing_exception_class_gives_a_recorded_error() -> None:
    text = serialize_exception_json(ValueError("card declined")).replace(
        "builtins:ValueError", "gone.payments:PaymentError"
    )
    with pytest.warns(RuntimeWarning):
        got = JSONSerializer().loads(text)
    assert isinstance(got, RecordedError) and isinstance(got, Exception)
    assert (got.type_name, got.message) == ("gone.payments.PaymentError", "card declined")
    assert str(got) == "gone.payments.PaymentError: card declined"


def serialize_exception_json(exc: BaseException) -> str:
    return JSONSerializer().dumps(exc)


# -- exceptions ---------------------------------------------------------------------------------

DBOS_ERRORS = [
    errors.DBOSConflictingWorkflowError("wf-1", "old_name", "new_name"),
    errors.DBOSNonExistentWorkflowError("wf-2"),
    errors.DBOSSerializationError("bad value", type_name="socket"),
    errors.DBOSUnexpectedStepError("wf-3", 4, "charge", "refund"),
    errors.DBOSMaxStepRetriesExceeded("charge", 3, [ValueError("a"), KeyError("b")]),
    errors.DBOSConfigurationError("set X"),
    errors.TimeoutError("wf-4", 1.5),
    errors.DBOSWorkflowCancelledError("wf-5"),
    errors.DBOSWorkflowInterrupted("wf-6", "test crash"),
]


@pytest.mark.parametrize("exc", DBOS_ERRORS, ids=lambda e: type(e).__name__)
def test_django_dbos_errors_round_trip_with_their_attributes(exc: BaseException) -> None:
    got = roundtrip(exc)
    assert type(got) is type(exc)
    assert str(got) == str(exc)
    assert got.args == exc.args
    assert repr(vars(got)) == repr(vars(exc))  # nested exceptions compare by repr


def test_dbos_timeout_error_is_still_a_builtin_timeout_error() -> None:
    got = roundtrip(errors.TimeoutError("wf", 2.0))
    assert isinstance(got, errors.TimeoutError) and isinstance(got, TimeoutError)
    assert vars(got)["workflow_id"] == "wf" and vars(got)["timeout"] == 2.0


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad", 3), KeyError("k"), OSError(2, "No such file"), RecordedError("A", "b")],
    ids=repr,
)
def test_builtin_exceptions_round_trip(exc: BaseException) -> None:
    got = roundtrip(exc)
    assert type(got) is type(exc) and got.args == exc.args and str(got) == str(exc)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_recorded_error_keeps_its_stored_path() -> None:
    """Rows name RecordedError ``django_dbos.serialization:RecordedError``; they still read back."""
    assert path_of(RecordedError) == "django_dbos.serialization:RecordedError"
    text = JSONSerializer().dumps(RecordedError("gone.Error", "card declined"))
    assert json.loads(text)["cls"] == "django_dbos.serialization:RecordedError"
    stored = (  # as written before serialization became a package
        '{"__dbos__":"exception","cls":"django_dbos.serialization:RecordedError",'
        '"str":"gone.Error: card declined","args":["gone.Error","card declined"],'
        '"attrs":{"type_name":"gone.Error","message":"card declined"}}'
    )
    for got in [JSONSerializer().loads(stored), JSONSerializer().loads(text)]:
        assert type(got) is RecordedError
        assert (got.type_name, got.message) == ("gone.Error", "card declined")
    pickled = base64.b64encode(  # a pickle names the class by the same module path
        b"\x80\x05\x95Z\x00\x00\x00\x00\x00\x00\x00\x8c\x19django_dbos.serialization\x94\x8c\r"
        b"RecordedError\x94\x93\x94\x8c\x01P\x94\x8c\x01q\x94\x86\x94R\x94}\x94(\x8c\ttype_name"
        b"\x94h\x03\x8c\x07message\x94h\x04ub."
    ).decode()
    got = PickleSerializer().loads(pickled)
    assert type(got) is RecordedError and str(got) == "P: q"


def test_exception_whose_init_takes_other_arguments_keeps_args_and_attributes() -> None:
    got = roundtrip(PaymentError("declined", code="insufficient_funds"))
    assert type(got) is PaymentError
    assert got.args == ("declined",) and got.code == "insufficient_funds"


def test_exception_with_unserializable_args_falls_back_to_its_message() -> None:
    exc = ValueError(Opaque(1), "x")
    got = roundtrip(exc)
    assert type(got) is ValueError and got.args == (str(exc),)


def test_exceptions_inside_values_round_trip() -> None:
    got = roundtrip({"errors": [ValueError("a"), errors.DBOSNonExistentWorkflowError("w")]})
    assert [type(e) for e in got["errors"]] == [ValueError, errors.DBOSNonExistentWorkflowError]
    assert got["errors"][1].workflow_id == "w"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        '"a string"',
        '{"__dbos__": "exception"}',
        '{"__dbos__": "no-such-tag"}',
        '{"__dbos__": ["unhashable"]}',
        '{"__dbos__": "exception", "cls": "builtins:ValueError", "reduce": 5, "args": 7}',
    ],
)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_deserialize_exception_never_raises(text: str) -> None:
    with override_settings(DBOS={"SERIALIZER": JSON_PATH}):
        got = deserialize_exception(text)
    assert isinstance(got, BaseException)


def test_serialize_exception_falls_back_when_the_serializer_refuses() -> None:
    exc = ValueError("locked")
    exc.lock = threading.Lock()  # type: ignore[attr-defined]
    with override_settings(DBOS={"SERIALIZER": PICKLE_PATH}):
        got = deserialize_exception(serialize_exception(exc))
    assert type(got) is RecordedError and str(got) == "ValueError: locked"


# -- unserializable values fail at once, saying what and where ----------------------------------


def test_unserializable_argument_names_its_type_and_place() -> None:
    with (
        override_settings(DBOS={"SERIALIZER": JSON_PATH}),
        pytest.raises(errors.DBOSSerializationError) as info,
    ):
        serialize_args((1, {"items": [Opaque(1)]}), {})
    message = str(info.value)
    assert type_name_of(info.value) == f"{Opaque.__module__}.Opaque"
    assert f"{Opaque.__module__}.Opaque" in message
    assert "args[1]['items'][0]" in message
    assert "PickleSerializer" in message and "plain data" in message


@pytest.mark.parametrize(
    ("value", "where", "type_name"),
    [
        ({"k": {"z": [1, lambda: 1]}}, "k['z'][1]", "function"),
        ({"k": threading.Lock()}, "k", "_thread.lock"),
        ([Point(1, Opaque(2))], "[0].y", None),  # type: ignore[arg-type]
        ({(1, 2): {3: object()}}, "[(1, 2)][3]", "object"),
        ({"a": {object()}}, "a", "object"),
        (Opaque(1), "", None),
    ],
)
def test_error_location(value: Any, where: str, type_name: str | None) -> None:
    with pytest.raises(errors.DBOSSerializationError) as info:
        JSONSerializer().dumps(value)
    expected_type = type_name or f"{Opaque.__module__}.Opaque"
    assert type_name_of(info.value) == expected_type
    if where:
        assert f" at {where}" in str(info.value)
    else:
        assert " at " not in str(info.value)


def test_kwargs_location() -> None:
    with (
        override_settings(DBOS={"SERIALIZER": JSON_PATH}),
        pytest.raises(errors.DBOSSerializationError, match=r"at kwargs\['order'\]"),
    ):
        serialize_args((), {"order": Opaque(1)})


def test_class_defined_in_a_function_is_refused_at_once() -> None:
    @dataclasses.dataclass
    class Local:
        a: int

    with pytest.raises(errors.DBOSSerializationError, match="module level"):
        JSONSerializer().dumps([Local(1)])


def test_circular_value_is_refused() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(errors.DBOSSerializationError, match="contains itself"):
        JSONSerializer().dumps(value)


# -- pickle (opt-in) ----------------------------------------------------------------------------


def test_pickle_is_opt_in_and_round_trips_anything_picklable() -> None:
    with (
        override_settings(DBOS={"SERIALIZER": JSON_PATH}),
        pytest.raises(errors.DBOSSerializationError),
    ):
        serialize(Opaque(1))
    with override_settings(DBOS={"SERIALIZER": PICKLE_PATH}):
        assert get_serializer().name == "pickle"
        assert deserialize(serialize({"o": Opaque(7), "t": (1,)})) == {"o": Opaque(7), "t": (1,)}


def test_pickle_refuses_unpicklable_values_naming_the_type() -> None:
    with pytest.raises(errors.DBOSSerializationError) as info:
        PickleSerializer().dumps(threading.Lock())
    assert type_name_of(info.value) == "_thread.lock" and "_thread.lock" in str(info.value)
    with pytest.raises(errors.DBOSSerializationError):
        PickleSerializer().loads("not base64 pickle")


# -- encryption ---------------------------------------------------------------------------------


def test_encrypted_round_trip_hides_the_value() -> None:
    serializer = EncryptedSerializer(keys=[KEY_NEW])
    value = {"card": "4242 4242", "when": dt.date(2024, 1, 1), "t": (1,)}
    text = serializer.dumps(value)
    assert text.startswith("fernet:") and "4242" not in text
    assert_identical(serializer.loads(text), value)


def test_key_rotation() -> None:
    old = EncryptedSerializer(keys=[KEY_OLD])
    rotated = EncryptedSerializer(keys=[KEY_NEW, KEY_OLD])
    new_only = EncryptedSerializer(keys=[KEY_NEW])
    text = old.dumps(["secret", 1])
    assert rotated.loads(text) == ["secret", 1]  # an old key still decrypts
    with pytest.raises(errors.DBOSSerializationError, match="ENCRYPTION_KEYS"):
        new_only.loads(text)
    again = rotated.rotate(text)
    assert again != text and again.startswith("fernet:")
    assert new_only.loads(again) == ["secret", 1]  # re-encrypted with the newest key
    with pytest.raises(errors.DBOSSerializationError):
        old.loads(again)
    assert new_only.loads(rotated.dumps("x")) == "x"  # encrypts with the first key


def test_wrong_key_or_tampered_token_is_a_serialization_error() -> None:
    text = EncryptedSerializer(keys=[KEY_OLD]).dumps("x")
    with pytest.raises(errors.DBOSSerializationError):
        EncryptedSerializer(keys=[KEY_NEW]).loads(text)
    with pytest.raises(errors.DBOSSerializationError):
        EncryptedSerializer(keys=[KEY_OLD]).loads(text[:-4] + "AAAA")
    with pytest.raises(errors.DBOSSerializationError):
        EncryptedSerializer(keys=[KEY_OLD]).loads("fernet:not-a-token")


def test_plain_json_rows_from_before_encryption_still_load_and_rotate() -> None:
    serializer = EncryptedSerializer(keys=[KEY_NEW])
    legacy = JSONSerializer().dumps({"t": (1, 2)})
    assert serializer.loads(legacy) == {"t": (1, 2)}
    assert serializer.rotate(legacy).startswith("fernet:")
    assert serializer.loads(serializer.rotate(legacy)) == {"t": (1, 2)}
    pickled = EncryptedSerializer(PickleSerializer(), keys=[KEY_NEW])
    assert pickled.loads(pickled.dumps(Opaque(3))) == Opaque(3)
    with pytest.raises(errors.DBOSSerializationError, match="not encrypted"):
        pickled.loads(PickleSerializer().dumps(Opaque(3)))  # no unauthenticated pickle


def test_encrypted_from_settings_and_cache_follows_the_keys() -> None:
    dbos = {"SERIALIZER": ENCRYPTED_PATH, "ENCRYPTION_KEYS": [KEY_OLD]}
    with override_settings(DBOS=dbos):
        first = get_serializer()
        assert first is get_serializer() and first.name == "encrypted"
        text = serialize(Point(1, 2))
        assert text.startswith("fernet:") and deserialize(text) == Point(1, 2)
    with override_settings(DBOS={**dbos, "ENCRYPTION_KEYS": [KEY_NEW, KEY_OLD]}):
        assert get_serializer() is not first
        assert deserialize(text) == Point(1, 2)


def test_missing_keys_is_a_configuration_error() -> None:
    with (
        override_settings(DBOS={"SERIALIZER": ENCRYPTED_PATH}),
        pytest.raises(errors.DBOSConfigurationError, match=r"DBOS\['ENCRYPTION_KEYS'\]"),
    ):
        get_serializer()
    with pytest.raises(errors.DBOSConfigurationError):
        EncryptedSerializer(keys=[])


def test_invalid_key_is_a_configuration_error_that_does_not_echo_it() -> None:
    with pytest.raises(errors.DBOSConfigurationError, match=r"\[1\]") as info:
        EncryptedSerializer(keys=[KEY_NEW, "not-a-real-key-but-secret"])
    assert "not-a-real-key-but-secret" not in str(info.value)


def test_missing_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)
    with pytest.raises(errors.DBOSConfigurationError, match=r"\[crypto\]"):
        EncryptedSerializer(keys=[KEY_NEW])


# -- configuration ------------------------------------------------------------------------------


def test_default_serializer_is_json_and_cached() -> None:
    with override_settings(DBOS={}):
        assert type(get_serializer()) is JSONSerializer
        assert get_serializer() is get_serializer()


def test_serializer_path_may_name_a_factory() -> None:
    with override_settings(DBOS={"SERIALIZER": f"{__name__}.make_json_serializer"}):
        assert type(get_serializer()) is JSONSerializer


def test_bad_serializer_path_is_a_configuration_error() -> None:
    with (
        override_settings(DBOS={"SERIALIZER": "no.such.Serializer"}),
        pytest.raises(errors.DBOSConfigurationError, match=r"no\.such\.Serializer"),
    ):
        get_serializer()


def test_check_serializer_path() -> None:
    assert check_serializer_path(JSON_PATH) is None
    assert check_serializer_path(PICKLE_PATH) is None
    assert check_serializer_path(f"{__name__}.make_json_serializer") is None
    assert "no.such.Thing" in (check_serializer_path("no.such.Thing") or "")
    assert "dumps() and loads()" in (check_serializer_path("collections.OrderedDict") or "")
    with override_settings(DBOS={}):
        assert "ENCRYPTION_KEYS" in (check_serializer_path(ENCRYPTED_PATH) or "")


# -- the engine's helpers -----------------------------------------------------------------------


def test_args_round_trip_and_stay_queryable() -> None:
    with override_settings(DBOS={"SERIALIZER": JSON_PATH}):
        text = serialize_args((1, (2, 3), Point(4, 5)), {"when": dt.date(2024, 1, 1), "n": None})
        assert json.loads(text)["args"][0] == 1 and json.loads(text)["kwargs"]["n"] is None
        args, kwargs = deserialize_args(text)
        assert_identical(args, (1, (2, 3), Point(4, 5)))
        assert_identical(kwargs, {"when": dt.date(2024, 1, 1), "n": None})
        assert deserialize_args(None) == ((), {})
        assert deserialize(None) is None
        with pytest.raises(errors.DBOSSerializationError):
            deserialize_args(serialize([1, 2]))


def test_malformed_stored_value_is_a_serialization_error() -> None:
    for text in ["{", '{"__dbos__": "tuple"}', '{"__dbos__": "uuid", "v": "nope"}']:
        with pytest.raises(errors.DBOSSerializationError):
            JSONSerializer().loads(text)


def test_module_exports() -> None:
    assert set(serialization.__all__) >= {
        "Serializer",
        "JSONSerializer",
        "PickleSerializer",
        "EncryptedSerializer",
        "RecordedError",
        "get_serializer",
        "check_serializer_path",
    }
