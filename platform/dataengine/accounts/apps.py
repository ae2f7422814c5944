from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dataengine.accounts"
    label = "accounts"
