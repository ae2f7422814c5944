"""The landing page: what the engine holds, per project (server-rendered, no JavaScript)."""
from django.db.models import Count
from django.shortcuts import render

from dataengine.accounts.services import visible_projects
from dataengine.annotation.models import HumanTask


def home(request):
    projects = []
    if request.user.is_authenticated:
        for project in visible_projects(request.user).order_by("id"):
            states = dict(project.datapoints.values_list("state").annotate(n=Count("id")).order_by())
            queued = dict(HumanTask.objects.filter(project=project, state="queued").values_list("kind")
                          .annotate(n=Count("id")).order_by())
            projects.append({"project": project, "states": sorted(states.items()), "queued": sorted(queued.items())})
    return render(request, "dataengine/home.html", {"projects": projects})
