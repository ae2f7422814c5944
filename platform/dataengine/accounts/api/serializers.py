from django.contrib.auth import get_user_model
from rest_framework import serializers

from dataengine.accounts.models import Membership, Project, Role


class ProjectSerializer(serializers.ModelSerializer):
    active_model = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "phase", "config", "active_model", "created_at", "updated_at"]
        read_only_fields = ["id", "active_model", "created_at", "updated_at"]

    def validate_config(self, value):
        from dataengine.engine.config import ProjectConfig

        if not isinstance(value, dict):
            raise serializers.ValidationError("config must be an object")
        try:
            ProjectConfig.of(Project(config=value))
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.SlugRelatedField(source="user", slug_field="username",
                                            queryset=get_user_model().objects.all())
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
