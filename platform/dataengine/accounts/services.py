"""Who may do what in a project. Every API view goes through access_project."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from dataengine.accounts.models import Membership, Project, Role
from dataengine.errors import NotAllowed, NotFound

ANYONE = frozenset(Role.values)
LEADS = frozenset({Role.DATA_LEAD, Role.ADMIN})
WORKERS = frozenset({Role.ANNOTATOR, Role.REVIEWER, Role.DATA_LEAD, Role.ADMIN})


def role_in(user: AbstractBaseUser, project: Project) -> str | None:
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(user=user, project=project).only("role").first()
    return membership.role if membership else None


def access_project(user: AbstractBaseUser, project_id: int, roles=ANYONE) -> Project:
    """The project, if ``user`` holds one of ``roles`` in it. Non-members get 404 (no existence leak)."""
    project = Project.objects.filter(pk=project_id).first()
    role = role_in(user, project) if project else None
    if project is None or role is None:
        raise NotFound(f"project {project_id} not found")
    if role not in roles:
        raise NotAllowed(f"your role in this project ({role}) may not do this")
    return project


def access_project_id(user: AbstractBaseUser, project_id: int, roles=ANYONE) -> int:
    """access_project in one query, for hot paths that need only the id."""
    if user.is_superuser:
        return access_project(user, project_id, roles).pk
    role = Membership.objects.filter(user=user, project_id=project_id).values_list("role", flat=True).first()
    if role is None:
        raise NotFound(f"project {project_id} not found")
    if role not in roles:
        raise NotAllowed(f"your role in this project ({role}) may not do this")
    return project_id


def visible_projects(user: AbstractBaseUser):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


@transaction.atomic
def create_project(*, name: str, creator, description: str = "", phase: int = 1, config: dict | None = None) -> Project:
    """Create a project; its creator becomes its admin."""
    project = Project.objects.create(name=name, description=description, phase=phase, config=config or {})
    Membership.objects.create(user=creator, project=project, role=Role.ADMIN)
    return project


def add_member(project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
