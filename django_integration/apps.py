from django.apps import AppConfig
from django.core.signals import setting_changed


class DjangoIntegrationConfig(AppConfig):
    name = "django_integration"
    label = "django_integration"
    verbose_name = "Migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Only checks and signal receivers are registered here: the supervisor,
        # its threads and its children start on first use, so management
        # commands never start them.
        from django_integration import checks, conf  # noqa: F401

        setting_changed.connect(conf.clear_cache, dispatch_uid=f"{__name__}.conf")
