"""The data map's system checks (filled in by the guard commit of this issue)."""
