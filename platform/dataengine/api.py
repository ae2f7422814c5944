"""API plumbing shared by every app: error responses and the project-role permission."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dataengine.errors import DomainError


def exception_handler(exc, context):
    """DomainErrors become {"error": code, "message": ..., **detail} with their status; the rest is DRF's."""
    if isinstance(exc, DomainError):
        return Response({"error": exc.code, "message": exc.message, **exc.detail}, status=exc.status)
    return drf_exception_handler(exc, context)
