"""core.api.fields and core.api.serializers: the one convention every API serializer uses."""

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from rest_framework import serializers

from core.api.fields import EnumField, PriceField, QuantityField, TimestampField, UsdField
from core.api.serializers import InputSerializer, ReadSerializer


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        (QuantityField(), Decimal("0.010000000000000000"), "0.01"),
        (QuantityField(), Decimal("5.000000000000000000"), "5"),
        (QuantityField(), Decimal("0E-18"), "0"),
        (QuantityField(), Decimal("12345678901234567890.12345678901234567"), "12345678901234567890.12345678901234567"),
        (PriceField(), Decimal("63389.300000000000"), "63389.3"),
        (PriceField(), Decimal("50000.000000000000"), "50000"),
        (PriceField(), Decimal("0.000000000001"), "0.000000000001"),
        (UsdField(), Decimal("633.9"), "633.90"),
        (UsdField(), Decimal("-100"), "-100.00"),
        (UsdField(), Decimal("0.00"), "0.00"),
    ],
)
def test_quantities_and_prices_drop_trailing_zeros_and_usd_has_two_decimals(field, value, text):
    assert field.to_representation(value) == text


@pytest.mark.parametrize("data", ["1_000", "\u0661", "\uff11", "1e3", "-1E-3", " 1", "1 ", "", ".", "-", "NaN", "inf"])
def test_number_fields_refuse_anything_but_plain_ascii_decimals(data):
    with pytest.raises(serializers.ValidationError):
        QuantityField().run_validation(data)


@pytest.mark.parametrize(("data", "value"), [("-0.5", "-0.5"), ("+2", "2"), (".5", "0.5"), ("5.", "5"), (7, "7")])
def test_number_fields_take_plain_decimals_as_strings_and_numbers(data, value):
    assert QuantityField().run_validation(data) == Decimal(value)


def test_a_read_serializer_renders_each_field_through_its_own_to_representation():
    # given a field whose rendering differs from its base class's (the old render plan used
    # the DecimalField's places and silently ignored this)
    class Shouting(serializers.CharField):
        def to_representation(self, value):
            return value.upper()

    class Row(ReadSerializer):
        name = Shouting()
        amount = UsdField()
        quantity = QuantityField(source="nested.quantity")
        side = EnumField(choices=[("BUY", "BUY")])
        at = TimestampField(allow_null=True)

    row = SimpleNamespace(
        name="abc", amount=Decimal("1.5"), nested=SimpleNamespace(quantity=Decimal("2.50")), side="BUY", at=None
    )
    # when / then: the plan and DRF's generic rendering agree
    assert Row(row).data == {"name": "ABC", "amount": "1.50", "quantity": "2.5", "side": "BUY", "at": None}
    assert serializers.Serializer.to_representation(Row(), row) == Row(row).data


def test_timestamps_render_as_drf_does():
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert TimestampField().to_representation(at) == serializers.DateTimeField().to_representation(at)


def test_a_read_serializer_refuses_fields_that_read_the_context():
    class Row(ReadSerializer):
        name = serializers.SerializerMethodField()

        def get_name(self, row):
            return self.context["name"]

    with pytest.raises(TypeError):
        Row(SimpleNamespace()).data  # noqa: B018 - rendering is the act under test


def test_an_input_serializer_names_every_unknown_field():
    class Body(InputSerializer):
        amount = UsdField()

    body = Body(data={"amount": "1", "price": "2", "limit": "3"})
    assert not body.is_valid()
    assert {name: [str(e) for e in errors] for name, errors in body.errors.items()} == {
        "limit": ["Unknown field."],
        "price": ["Unknown field."],
    }
    assert body.errors["price"][0].code == "unknown_field"


class _Basket(InputSerializer):
    name = serializers.CharField(max_length=5)
    sizes = serializers.ListField(child=serializers.IntegerField(min_value=1))


def test_input_serializers_reading_requests_share_fields_bound_once_and_keep_their_own_results():
    # when two instances read requests plainly (no context, not partial)
    first = _Basket(data={"name": "a", "sizes": [1]})
    second = _Basket(data={"name": "toolong", "sizes": [0]})

    # then they share the fields bound once per class, never the class's declared ones
    for name in ("name", "sizes"):
        assert first.fields[name] is second.fields[name]
        assert first.fields[name] is not _Basket._declared_fields[name]
    assert first.fields["sizes"].child is not _Basket._declared_fields["sizes"].child
    # and each keeps its own data, result and errors
    assert first.is_valid()
    assert not second.is_valid()
    assert first.validated_data == {"name": "a", "sizes": [1]}
    assert set(second.errors) == {"name", "sizes"}


def test_a_serializer_with_context_or_partial_binds_its_own_fields():
    # The browsable API's forms pass a context; a partial update reads "required" differently.
    plain = _Basket(data={})
    for other in (_Basket(data={}, context={"request": None}), _Basket(data={}, partial=True)):
        assert other.fields["name"] is not plain.fields["name"]
        assert other.fields["name"].parent is other
        assert other.fields["sizes"].child is not plain.fields["sizes"].child


def test_interleaved_input_serializers_keep_their_own_data_and_errors():
    # given
    good, bad = _Basket(data={"name": "ab", "sizes": [1, 2]}), _Basket(data={"name": "toolong", "sizes": [0]})

    # when validated one after the other, sharing the declared fields' validators
    assert good.is_valid()
    assert not bad.is_valid()

    # then
    assert good.validated_data == {"name": "ab", "sizes": [1, 2]}
    assert set(bad.errors) == {"name", "sizes"}
    assert _Basket(data={"name": "ok", "sizes": [3]}).is_valid()


class _Item(InputSerializer):
    a = serializers.CharField()
    b = serializers.CharField()


class _Order(InputSerializer):
    item = _Item()


def test_a_serializer_nested_in_another_reads_with_the_outer_ones_context_and_partial():
    # given: a partial read with a context, through a nested serializer
    outer = _Order(data={"item": {"a": "x"}}, partial=True, context={"request": "the request"})

    # then: the nested fields belong to this read (b may be left out, the context is the outer's)
    assert outer.is_valid(), outer.errors
    assert outer.validated_data == {"item": {"a": "x"}}
    nested = outer.fields["item"]
    assert nested.fields["b"].root is outer
    assert nested.fields["b"].context == {"request": "the request"}
