"""The two serializer bases of the API: every request body (and, through ``parse_query``,
every query string) is read by an ``InputSerializer``, every answer written by a
``ReadSerializer``, both declared field by field from the helpers in ``core.api.fields``.
No ModelSerializer: what the API shows is a contract, written out, not whatever the model
has today.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from operator import attrgetter

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

UNKNOWN_FIELD = "unknown_field"

# Sent by the browsable API's HTML forms along with the fields: not the client's data.
_FORM_PLUMBING = frozenset({"csrfmiddlewaretoken"})


class ShallowFieldsSerializer(serializers.Serializer):
    """A serializer whose instances copy the declared fields shallowly (the base of every
    input serializer, Alpaca's included)."""

    def get_fields(self):
        # DRF deep-copies every declared field for every instance, which re-runs each field's
        # __init__: 9 fields were ~10% of a market order's CPU. Binding a field to its
        # serializer only assigns attributes (name, parent, source), so a shallow copy keeps
        # instances apart; fields that hold other fields (nested serializers, ListField's
        # child, bound to the original) still get DRF's deep copy.
        return {
            name: copy.deepcopy(field) if _holds_fields(field) else copy.copy(field)
            for name, field in self._declared_fields.items()
        }

    @cached_property
    def fields(self):
        """The class's fields, bound once per process and shared by every instance that reads
        a request plainly: no context, not partial, no instance to show. Reading a value keeps
        nothing on a field (each one only converts and checks), so requests on different
        threads share them; copying and binding them again for each request was ~4% of a
        market order's CPU. A form of the browsable API (context given), a partial update or
        a serializer nesting serializers (a list serializer keeps each item on its child while
        it reads it) bind their own, and so does one nested in another (its fields take the
        outer one's context and partial); a ListField's or DictField's child is a plain field."""
        if self._context or self.partial or self.instance is not None or self.parent is not None:
            return self._bind_own_fields()
        shared = type(self).__dict__.get("_shared_fields")
        if shared is None:
            shared = type(self)()._bind_own_fields()
            if any(_holds_serializer(field) for field in shared.values()):
                shared = False
            type(self)._shared_fields = shared
        return shared if shared is not False else self._bind_own_fields()

    def _bind_own_fields(self) -> BindingDict:
        fields = BindingDict(self)
        for name, field in self.get_fields().items():
            fields[name] = field
        return fields


class InputSerializer(ShallowFieldsSerializer):
    """A request body. A field it does not declare is refused, never dropped
    (docs/DESIGN.md, "Input"): ``{"limit_price": "0.01"}`` once placed a market order because the misspelt limit
    was ignored. The error's code is ``unknown_field`` and its details name each one."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data.keys() - self.fields.keys() - _FORM_PLUMBING)
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("Unknown field.", code=UNKNOWN_FIELD)] for name in unknown}
                )
        return super().to_internal_value(data)


class ReadSerializer(serializers.Serializer):
    """An answer, rendered cheaply: DRF's generic path costs ~50 us a row in attribute lookup and
    per-field bookkeeping (at 50 holdings that was more than the rest of the portfolio request).
    Here each class builds once a plan of (name, getter, the field's own ``to_representation``),
    so a field renders exactly as it declares, and None stays None as in DRF.

    Because the plan is shared by every instance of the class, fields must not depend on the
    serializer's context (no ``SerializerMethodField``): give them an object with the value.
    """

    def to_representation(self, instance):
        plan = type(self).__dict__.get("_render_plan")
        if plan is None:
            plan = _build_plan(self)
        return {name: None if (value := get(instance)) is None else render(value) for name, get, render in plan}


# Query parameters the framework reads itself, not the view's serializer.
_FRAMEWORK_PARAMS = frozenset({"username", "format"})


def parse_query(serializer_class: type[InputSerializer], request) -> dict:
    """The query string through an InputSerializer: an unknown parameter is a 400
    ``unknown_field`` (a misspelt ``?untill=`` must not silently widen the answer), and an
    empty value is refused like any malformed one, not read as "not given"."""
    params = {key: value for key, value in request.query_params.items() if key not in _FRAMEWORK_PARAMS}
    data = serializer_class(data=params)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _holds_fields(field) -> bool:
    return isinstance(field, serializers.BaseSerializer) or hasattr(field, "child") or hasattr(field, "child_relation")


def _holds_serializer(field) -> bool:
    return (
        isinstance(field, serializers.BaseSerializer)
        or isinstance(getattr(field, "child", None), serializers.BaseSerializer)
        or hasattr(field, "child_relation")
    )


def _build_plan(serializer: ReadSerializer) -> list:
    plan = []
    for name, field in serializer.fields.items():
        if isinstance(field, serializers.SerializerMethodField):
            raise TypeError(f"{type(serializer).__name__}.{name}: a ReadSerializer field may not read the context.")
        get = (lambda instance: instance) if field.source == "*" else attrgetter(field.source)
        plan.append((name, get, field.to_representation))
    type(serializer)._render_plan = plan
    return plan
