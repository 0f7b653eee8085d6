import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage


class PrivateStorage(FileSystemStorage):
    """Files under DSR_PRIVATE_FILES_DIR, outside every served path; read on each use so that the
    setting can change (tests, deployments) without a restart of the storage."""

    @property
    def base_location(self):
        return str(settings.DSR_PRIVATE_FILES_DIR)

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    @property
    def base_url(self):
        return None
