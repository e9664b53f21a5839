import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Users are cheap here: the default hasher costs ~0.2 s a user and proves nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
