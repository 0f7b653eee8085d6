"""Manual systems' owner tasks (built in a later commit of this issue)."""


def manual_tasks_remind() -> int:
    return 0
