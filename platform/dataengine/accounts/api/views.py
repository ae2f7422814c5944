from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dataengine.accounts import services
from dataengine.accounts.api.serializers import MembershipSerializer, ProjectSerializer
from dataengine.accounts.models import Membership
from dataengine.errors import NotAllowed


class ProjectList(generics.ListCreateAPIView):
    """Projects you are a member of; staff create projects (the creator becomes admin)."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return services.visible_projects(self.request.user).order_by("id")

    def perform_create(self, serializer):
        if not self.request.user.is_staff:
            raise NotAllowed("only staff users create projects")
        serializer.instance = services.create_project(creator=self.request.user, **serializer.validated_data)


class ProjectDetail(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, pk: int):
        return Response(ProjectSerializer(services.access_project(request.user, pk)).data)

    @extend_schema(request=ProjectSerializer, responses=ProjectSerializer)
    def patch(self, request, pk: int):
        project = services.access_project(request.user, pk, services.LEADS)
        serializer = ProjectSerializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        project = services.access_project(request.user, pk, {services.Role.ADMIN})
        project.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberList(APIView):
    @extend_schema(responses=MembershipSerializer(many=True))
    def get(self, request, pk: int):
        project = services.access_project(request.user, pk, services.LEADS)
        members = Membership.objects.filter(project=project).select_related("user").order_by("id")
        return Response(MembershipSerializer(members, many=True).data)

    @extend_schema(request=MembershipSerializer, responses={201: MembershipSerializer})
    def post(self, request, pk: int):
        project = services.access_project(request.user, pk, services.LEADS)
        serializer = MembershipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.add_member(project, serializer.validated_data["user"], serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
