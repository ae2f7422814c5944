from django.contrib import admin

from dataengine.accounts.models import Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "phase", "active_model", "created_at"]
    inlines = [MembershipInline]
