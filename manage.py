#!/usr/bin/env python
import os
import sys


def main():
    # Run mode unless told otherwise; the image and docker-compose set config.settings.production.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.run")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
