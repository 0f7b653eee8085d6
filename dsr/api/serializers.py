"""Input validation and output shapes. No business logic: views pass validated data to a service."""

from rest_framework import serializers

from dsr.models import AuditEvent, Channel, DataSubjectRequest, DenialReason, Language, Outcome, Regime, RequestType


class PublicRequestIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=RequestType.choices)
    regime = serializers.ChoiceField(choices=Regime.choices)
    email = serializers.EmailField(max_length=254)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    language = serializers.ChoiceField(choices=Language.choices, required=False, default=Language.EN)
    details = serializers.CharField(max_length=10000, required=False, allow_blank=True, default="")


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


class RequestDetailOut(serializers.ModelSerializer):
    type = serializers.CharField(source="request_type")
    extended = serializers.BooleanField(source="is_extended")
    overdue = serializers.SerializerMethodField()
    events = EventOut(many=True)

    class Meta:
        model = DataSubjectRequest
        fields = [
            "reference", "type", "regime", "channel", "language", "status", "email", "full_name", "details",
            "received_at", "verified_at", "acknowledged_at", "acknowledge_by", "respond_by", "original_respond_by",
            "extended", "extension_reason", "paused_days", "overdue", "overdue_since", "closed_at", "outcome",
            "denial_reason", "response_message", "events",
        ]

    def get_overdue(self, obj) -> bool:
        return obj.is_open and obj.respond_by < self.context["today"]


class ExtendIn(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class DenyIn(serializers.Serializer):
    reason_category = serializers.ChoiceField(choices=DenialReason.choices)
    message = serializers.CharField(max_length=10000)


class VerifyIn(serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class CompleteIn(serializers.Serializer):
    message = serializers.CharField(max_length=10000)
    outcome = serializers.ChoiceField(
        choices=[(Outcome.COMPLIED, Outcome.COMPLIED.label), (Outcome.COMPLIED_IN_PART, Outcome.COMPLIED_IN_PART.label)],
        required=False,
        default=Outcome.COMPLIED,
    )


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class MessageIn(serializers.Serializer):
    message = serializers.CharField(max_length=10000)
    for_identity = serializers.BooleanField(required=False, default=False)


class RequestFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=DataSubjectRequest._meta.get_field("status").choices, required=False)
    type = serializers.ChoiceField(choices=RequestType.choices, required=False)
    regime = serializers.ChoiceField(choices=Regime.choices, required=False)
    overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
    search = serializers.CharField(required=False, allow_blank=True, max_length=254)
