"""Input validation and output shapes. No business logic: views pass validated data to a service."""

import functools

from rest_framework import serializers

from dsr import actions
from dsr.models import (
    AccessPeriod,
    AuditEvent,
    Channel,
    DataSubjectRequest,
    Language,
    OutboundEmail,
    Regime,
    Relationship,
    RequestType,
    Status,
    Suppression,
    SuppressionScope,
)
from dsr.services.intake import CORRECTABLE_FIELDS, CORRECTIONS_MAX, IntakeDetails
from dsr.validators import single_line


class CorrectionIn(serializers.Serializer):
    field = serializers.ChoiceField(choices=[(f, f) for f in CORRECTABLE_FIELDS])
    wrong = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", validators=[single_line]
    )
    correct = serializers.CharField(max_length=500, validators=[single_line])


class AgentIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, validators=[single_line])
    email = serializers.EmailField(max_length=254, validators=[single_line])
    power_of_attorney = serializers.BooleanField()

    def validate_power_of_attorney(self, value):
        # A signed permission is a file: it comes through the web form; the API takes agents with a
        # power of attorney (§7063(b)).
        if not value:
            raise serializers.ValidationError(
                "Through the API an agent needs a power of attorney; send signed permissions through the web form."
            )
        return value


class PublicRequestIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=RequestType.choices)
    regime = serializers.ChoiceField(choices=Regime.choices)
    email = serializers.EmailField(max_length=254, validators=[single_line])
    full_name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", validators=[single_line]
    )
    language = serializers.ChoiceField(choices=Language.choices, required=False, default=Language.EN)
    details = serializers.CharField(max_length=10000, required=False, allow_blank=True, default="")
    relationship = serializers.ChoiceField(choices=Relationship.choices, required=False, default=Relationship.CUSTOMER)
    access_period = serializers.ChoiceField(
        choices=AccessPeriod.choices, required=False, default=AccessPeriod.LAST_12_MONTHS
    )
    # The length is checked before any row is looked at.
    corrections = CorrectionIn(
        many=True,
        required=False,
        default=list,
        max_length=CORRECTIONS_MAX,  # type: ignore[call-arg]  # many=True makes a ListSerializer, which takes max_length
        error_messages={
            "max_length": "Send at most {max_length} corrections in one request; describe any others under details."
        },
    )
    agent = AgentIn(required=False, default=None, allow_null=True)

    def validate(self, data):
        if data["type"] == RequestType.RECTIFICATION and not data["corrections"] and not data["details"].strip():
            raise serializers.ValidationError({"corrections": ["Say what is wrong and what it should be."]})
        return data

    def intake(self, *, gpc: bool = False):
        v, agent = self.validated_data, self.validated_data.get("agent") or {}
        return IntakeDetails(
            relationship=v["relationship"],
            access_period=v["access_period"],
            corrections=tuple(dict(c) for c in v["corrections"]),
            agent_name=agent.get("name", ""),
            agent_email=agent.get("email", ""),
            agent_power_of_attorney=bool(agent.get("power_of_attorney")),
            gpc_signal=gpc,
        )


class PublicRequestOut(serializers.Serializer):
    reference = serializers.CharField()
    message = serializers.CharField()


class StaffRequestIn(PublicRequestIn):
    channel = serializers.ChoiceField(choices=Channel.choices)
    received_at = serializers.DateTimeField(required=False)


class RequestListOut(serializers.ModelSerializer):
    type = serializers.CharField(source="request_type")

    class Meta:
        model = DataSubjectRequest
        fields = ["reference", "type", "regime", "status", "email", "full_name", "channel", "received_at", "respond_by"]


class EventOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["seq", "event_type", "actor_type", "actor", "from_status", "to_status", "data", "created_at", "hash"]


class EmailOut(serializers.ModelSerializer):
    class Meta:
        model = OutboundEmail
        fields = [
            "id",
            "template",
            "to",
            "language",
            "subject",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
            "delivery_status",
            "delivery_detail",
            "delivery_updated_at",
        ]


class RequestDetailOut(serializers.ModelSerializer):
    type = serializers.CharField(source="request_type")
    extended = serializers.BooleanField(source="is_extended")
    overdue = serializers.SerializerMethodField()
    events = EventOut(many=True)
    emails = EmailOut(many=True)
    assignee = serializers.CharField(source="assignee.username", default=None, read_only=True)

    class Meta:
        model = DataSubjectRequest
        fields = [
            "reference",
            "type",
            "regime",
            "channel",
            "language",
            "status",
            "email",
            "full_name",
            "details",
            "received_at",
            "verified_at",
            "acknowledged_at",
            "acknowledge_by",
            "respond_by",
            "original_respond_by",
            "extended",
            "extension_reason",
            "paused_days",
            "overdue",
            "overdue_since",
            "closed_at",
            "outcome",
            "denial_reason",
            "response_message",
            "assignee",
            "flagged_at",
            "flag_reason",
            "events",
            "emails",
        ]

    def get_overdue(self, obj) -> bool:
        return obj.is_open and obj.respond_by < self.context["today"]


def _action_field(spec: actions.InputField) -> serializers.Field:
    if isinstance(spec, actions.Flag):
        return serializers.BooleanField(required=False, default=False)
    if isinstance(spec, actions.Choice):
        if spec.default:
            return serializers.ChoiceField(choices=list(spec.choices), required=False, default=spec.default)
        return serializers.ChoiceField(choices=list(spec.choices))
    validators = [single_line] if spec.one_line else []
    if spec.optional:
        # The body may leave it out: it is "" then.
        return serializers.CharField(
            max_length=spec.max_length,
            allow_blank=spec.blank,
            required=False,
            default="",
            validators=validators,
            help_text=spec.help_text or None,
        )
    return serializers.CharField(
        max_length=spec.max_length, allow_blank=spec.blank, validators=validators, help_text=spec.help_text or None
    )


@functools.cache
def action_serializer(body: actions.Input) -> type[serializers.Serializer]:
    """The body of an action's endpoint, built from its entry in dsr.actions (the dashboard builds
    its form from the same fields); one class per Input, named as the schema's component."""
    fields = {spec.name: _action_field(spec) for spec in body.fields}
    return type(body.name, (serializers.Serializer,), {"__module__": __name__, **fields})


class RequestFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    type = serializers.ChoiceField(choices=RequestType.choices, required=False)
    regime = serializers.ChoiceField(choices=Regime.choices, required=False)
    overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
    search = serializers.CharField(required=False, allow_blank=True, max_length=254)


class SuppressionFilterIn(serializers.Serializer):
    scope = serializers.ChoiceField(choices=SuppressionScope.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Only entries added at or after this time.")


class SuppressionOut(serializers.ModelSerializer):
    hash = serializers.CharField(source="email_hash", help_text="HMAC-SHA256 of the normalised address, hex.")

    class Meta:
        model = Suppression
        fields = ["hash", "scope", "source", "created_at"]


class SuppressionCheckIn(serializers.Serializer):
    # As loose as the intake (an "@" and one line): an address a request was accepted with can be checked.
    email = serializers.CharField(max_length=254, validators=[single_line])

    def validate_email(self, value):
        if "@" not in value:
            raise serializers.ValidationError("An email address is needed.")
        return value


class SuppressionCheckOut(serializers.Serializer):
    suppressed = serializers.BooleanField()
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SuppressionScope.choices))
